"""The operator's dashboard: one static page the HTTP API serves at ``/``, with no build step.

Everything the page shows it reads from the API as any client would: ``/v1/stats`` (pool,
workers, rejects by reason, the latest blocks), ``/v1/rigs``, ``/v1/leases``, and the event
stream ``/v1/events`` (read with fetch() and a stream reader) to refresh rigs and leases as soon as
something happens. ``/v1/blocks``, ``/v1/history`` and ``/v1/policy`` feed their panels where the
API has them (``GET /dashboard/session`` says which, so the page never asks for a missing route);
without ``/v1/history`` the hashrate chart is drawn from ``/v1/stats`` sampled by the page.

* :mod:`.files` -- the packaged files under ``static/`` and their content types;
* ``static/`` -- ``index.html``, ``dashboard.js``, ``dashboard.css``, and ``vendor/uplot/``
  (uPlot, the charting library, vendored unchanged with its licence and version).

Access is `stratumkit.api.access`: the page itself needs no token; its API calls need none from
the pool's own host, and the page asks for the token (kept in sessionStorage) anywhere else.
"""
