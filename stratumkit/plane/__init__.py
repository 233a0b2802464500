"""One lease plane shared by several `stratumkit serve` front ends, on Redis.

Front ends started with the same ``lease_plane`` name and one Redis ``queue_url`` share rigs,
leases, queues and events. The parts:

- :mod:`.keys`: every Redis key of a plane, and how messages are packed (msgpack, one stream
  field ``m``).
- :mod:`.lock`: the leader lock ``<plane>:leader`` (SET NX PX, renewed by its holder) and the
  fencing counter ``<plane>:epoch`` (INCRed by each new holder: the fencing token). The lease
  store a leader writes is fenced by its epoch (:class:`stratumkit.lease.redis_store.Fenced`).
- :mod:`.relay`: the extension port of every front end. It numbers each rig connection and sends
  its extension requests, accepted shares and end to the leader's inbox stream, tagged with the
  epoch it believes current; it applies the leader's commands for its connections (from its own
  command stream) and drops commands of any other epoch. When a new epoch is announced it says
  hello for every registered connection (a registration with the rig's latest token, so a
  serving rig resumes its stint) and sends again every request still unanswered.
- :mod:`.host`: what the leader runs: the one :class:`~stratumkit.lease.service.LeaseService`
  of the plane, restored from the shared store, with a :class:`~.host.RemoteRigConnection` per
  connection of any front end (its calls become commands on that front end's stream), the API
  calls of other front ends (request stream, reply list), and every event put on the events
  stream. A front end whose alive key expired has its rigs suspended (they keep their stints
  for the resume grace, to come back through another front end).
- :mod:`.node`: per front end, the standby loop that takes the lock when it is free, runs the
  host while it holds it, and steps down when a renewal fails or a fenced write is refused.
- :mod:`.api`: the lease calls of the HTTP API on any front end: the leader's service when this
  process leads, else forwarded to the leader (503 when no answer comes in time); events are
  read from the events stream on every front end.

Rules:

- Exactly one decision-maker: only the holder of the lock runs a LeaseController, and every
  write it makes to the shared store is refused once its epoch is not the plane's.
- Every front end reaches the leader through Redis streams with the same messages; the
  leader's own relay hands them to its host in memory (and takes its commands the same way),
  with the same epoch checks, so a change of leader changes only the transport of a connection.
- The power layer (:mod:`stratumkit.power`) runs on the leader only, over its lease service
  (started when a front end takes the plane, stopped when it leaves it); its API routes on other
  front ends are forwarded to it (:class:`~.api.PlanePower`). Plain miners of other front ends
  are not reached by it.
"""
