"""The integrator surfaces: the HTTP JSON API and the `lease`/`rig`/`job`/`stats` commands.

* :mod:`.app` -- `serve_api` / `ApiApp`, the ASGI app on hypercorn's trio worker (pool side);
* :mod:`.metrics` -- the Prometheus page, rendered from plain dicts;
* :mod:`.cli` -- `add_subcommands`, the commands, which talk to the API through
  :mod:`stratumkit.client`.

Nothing is imported here, so that the commands start without loading the pool's modules.
"""
