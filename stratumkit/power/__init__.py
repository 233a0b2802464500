"""Dual mode by price and power: prices in, the policy running, curtailment, energy and money.

The pure parts read no clock and do no I/O: :mod:`.prices` (a quote and its checks, the price
book that knows when prices are stale), :mod:`.series` (a CSV price series), :mod:`.curtail`
(which units an operator's curtailment sheds), :mod:`.controller` (the policy applied to every
unit, and operator curtailments over it), :mod:`.energy` (kWh and dollars per unit and mode) and
:mod:`.simulate` (a replay of a series against naive strategies). :mod:`.settings` reads the
pool configuration's ``[power]`` table.

The trio part is :mod:`.service` (and :mod:`.feeds`, the file replay and the URL poller): it
runs the controller on trio's clock over the pool's connections and the lease service's rigs.
"""
