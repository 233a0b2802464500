"""The composition root: the one place that builds the pool, the lease service and the API from a
configuration and wires them together.

Nothing below this module imports across the layers it joins: the pool knows the lease service
only as its extension port (`stratumkit.session.ports.ExtensionPort`), the lease service knows a
rig only as a `RigConnection`, and the API knows both only through `stratumkit.api.ports`.

    check_config(config)    every check that binds, writes and asks nothing (`serve --check-config`)
    open_app(config)        template source, queue, lease service, pool (not yet running)
    App.run()               pool, lease service and (when api_port is set) the HTTP API
                            (with lease_plane: the plane node of `stratumkit.plane` in place of
                            the lease service; the pool's extension port is its relay, the
                            API's lease and power calls go to the plane's leader, which alone
                            runs the power service, while it leads)
    serve(config)           `stratumkit serve`: App.run until SIGINT / SIGTERM; SIGHUP reloads
                            the TLS certificate (App.reload_certificate)
"""

from __future__ import annotations

import contextlib
import functools
import gc
import signal
import sqlite3
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
import trio

from stratumkit.causes import caused_by
from stratumkit.chain.address import Network
from stratumkit.failures import ConfigError, StartupFailure, damaged_file
from stratumkit.jobs.sources import EmbeddedTemplateSource, TemplateSource
from stratumkit.preflight import check_data_dir, check_node, hold_data_dir
from stratumkit.queue.engine import QueueEngine
from stratumkit.queue.expiry import expire_results_every
from stratumkit.server.config import PoolConfig, flag_of
from stratumkit.server.listeners import bind_socket
from stratumkit.server.pool import Pool, payout_script
from stratumkit.server.tls import api_context, reload_certificate, stratum_context

if TYPE_CHECKING:
    from stratumkit.api.ports import LeaseAPI, PowerAPI
    from stratumkit.lease.service import LeaseService
    from stratumkit.lease.store import LeaseStore
    from stratumkit.plane.api import PlaneLeases, PlanePower
    from stratumkit.plane.node import PlaneNode
    from stratumkit.power.service import PowerService

log = structlog.get_logger("stratumkit.serve")


def make_source(config: PoolConfig) -> TemplateSource:
    """The node's getblocktemplate when node_url is set, else the embedded chain."""
    if config.node_url is None:
        return EmbeddedTemplateSource(
            difficulty=config.embedded_difficulty,
            state_path=config.data_path / "embedded-chain.json",
            refresh_interval=config.template_refresh,
            filler_transactions=config.embedded_filler_transactions,
        )
    from stratumkit.jobs.node import NodeTemplateSource
    from stratumkit.jobs.rpc import NodeRPC

    try:
        rpc = NodeRPC(config.node_url, cookie_file=config.node_cookie)
    except ValueError as exc:
        raise ConfigError(f"node_url / node_cookie: {exc}") from None
    return NodeTemplateSource(
        rpc,
        poll_interval=config.node_poll_interval,
        refresh_interval=config.template_refresh,
        retry_max=config.node_retry_max,
    )


@asynccontextmanager
async def open_queue(config: PoolConfig) -> AsyncIterator[QueueEngine]:
    """The inference job queue: SQLite in the data directory, or Redis when queue_url says so."""
    if config.queue_url is None:
        from stratumkit.queue.sqlite import open_sqlite_queue

        path = config.data_path / "queue.sqlite"
        async with AsyncExitStack() as stack:
            try:
                sqlite_queue = await stack.enter_async_context(open_sqlite_queue(path))
            except sqlite3.DatabaseError as exc:
                raise damaged_file(path, "a SQLite database of inference jobs", exc) from None
            yield sqlite_queue
        return
    from coredis.exceptions import AuthenticationError

    from stratumkit.queue.engine import QueueError
    from stratumkit.queue.redis import EarlierLayout, open_redis_queue

    async with AsyncExitStack() as stack:
        try:
            queue = await stack.enter_async_context(open_redis_queue(config.queue_url))
        except EarlierLayout as exc:
            raise StartupFailure(f"queue_url: {exc}") from None
        except QueueError as exc:
            if caused_by(exc, AuthenticationError):
                raise ConfigError(f"queue_url: {exc}: fix the password in {flag_of('queue_url')}") from None
            raise StartupFailure(f"queue_url: {exc}: start Redis or fix {flag_of('queue_url')}") from None
        except ValueError as exc:
            raise ConfigError(f"queue_url {config.queue_url!r}: {exc}") from None
        yield queue


def make_api_tls(config: PoolConfig) -> ssl.SSLContext | None:
    """The HTTPS API's context when api_tls is set (the certificate of tls_cert and tls_key)."""
    if not config.api_tls:
        return None
    assert config.tls_cert is not None and config.tls_key is not None  # PoolConfig.validate
    return api_context(config.tls_cert, config.tls_key)


def check_config(config: PoolConfig) -> None:
    """Every check of `config` that binds no port, writes nothing and asks no other process;
    ConfigError on the first failure. Every start runs these too, as it builds the parts."""
    config.validate()
    check_data_dir(config)
    if config.tls_cert is not None and config.tls_key is not None:
        stratum_context(config.tls_cert, config.tls_key)
    make_api_tls(config)
    payout_script(config.payout_address, Network.from_chain_name(config.network))
    make_source(config)


def open_lease_store(config: PoolConfig, queue: QueueEngine) -> AbstractAsyncContextManager[LeaseStore]:
    """Where leases, stints and rigs are kept across restarts: SQLite in the data directory, or
    Redis beside a Redis queue (on its connections)."""
    if config.queue_url is not None:
        from stratumkit.lease.redis_store import RedisLeaseStore
        from stratumkit.queue.redis import RedisQueueEngine

        if isinstance(queue, RedisQueueEngine):
            # each pool process (instance_id) keeps its own leases until they share one plane
            return nullcontext(RedisLeaseStore(queue.client, prefix=f"stratumkit:leases:{config.instance_id}"))
    from stratumkit.lease.sqlite_store import open_sqlite_lease_store

    return open_sqlite_lease_store(config.data_path / "leases.sqlite")


def open_plane(
    config: PoolConfig,
    queue: QueueEngine,
    make_service: Callable[[LeaseStore], LeaseService],
    make_power: Callable[[LeaseService], PowerService] | None = None,
) -> PlaneNode:
    """This front end's node of the shared lease plane ``lease_plane`` (on the Redis queue's
    connections): its front end id is ``fe-<instance_id>``, so give each front end its own.
    ``make_power``: the power service the node runs on its lease service while it leads."""
    from stratumkit.plane.node import PlaneNode
    from stratumkit.queue.redis import RedisQueueEngine

    assert isinstance(queue, RedisQueueEngine) and config.lease_plane is not None  # PoolConfig.validate
    return PlaneNode(queue.client, config.lease_plane, f"fe-{config.instance_id}", make_service, make_power=make_power)


def tune_gc() -> None:
    """Garbage collection for a long-running server with many connections.

    Every session holds long-lived objects, so each full collection walks a large heap; with
    10,000 miners that cost the pool about a third of its CPU per share when we measured it
    (`stratumkit bench pool`). Objects alive once the pool is up are moved out of the collector's
    view (`gc.freeze`), and young collections run less often. Reference counting still frees
    almost everything at once; only cyclic garbage waits a little longer.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@dataclass
class App:
    """The wired parts of one pool process."""

    config: PoolConfig
    pool: Pool
    leases: LeaseService | None  # None on a shared lease plane: the plane node runs one when it leads
    queue: QueueEngine
    power: PowerService | None  # None on a shared lease plane: the plane node runs one when it leads
    plane: PlaneNode | None = None
    plane_api: PlaneLeases | None = None
    plane_power: PlanePower | None = None
    api_port: int | None = None
    #: The HTTPS API's context (api_tls), made at start so a certificate that does not load stops it.
    api_tls: ssl.SSLContext | None = None

    def reload_certificate(self) -> None:
        """Read tls_cert and tls_key again into the TLS stratum listener and the HTTPS API (SIGHUP):
        new connections get the new certificate, existing ones keep theirs; one that does not load
        is logged in one line and the old one stays."""
        contexts = [context for context in (self.pool.tls, self.api_tls) if context is not None]
        cert, key = self.config.tls_cert, self.config.tls_key
        if not contexts or cert is None or key is None:
            log.info("no certificate to reload (neither tls_port nor api_tls is set)")
            return
        try:
            fingerprint = reload_certificate(contexts, cert, key)
        except ConfigError as exc:
            log.error("certificate not reloaded, the old one stays", error=str(exc))
            return
        log.info("certificate reloaded", tls_cert=cert, sha256=fingerprint, listeners=len(contexts))

    async def run(
        self,
        *,
        shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
        task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run everything until cancelled; reports itself started once every listener is bound."""
        config = self.config
        async with trio.open_nursery() as nursery:
            # every port is bound before anything starts: the API's here, the pool's first in Pool.run
            api_port = config.api_port
            api_socket = (
                bind_socket(config.api_host, api_port, port_key="api_port", host_key="api_host")
                if api_port is not None
                else None
            )
            power_api: PowerAPI | None = self.power if self.plane_power is None else self.plane_power
            with api_socket or contextlib.nullcontext():
                await nursery.start(self.pool.run)
                api_leases: LeaseAPI
                if self.plane is not None and self.plane_api is not None:
                    await nursery.start(self.plane.run)
                    nursery.start_soon(self.plane.keep_integrators, self.plane_api.integrators)
                    api_leases = self.plane_api
                else:
                    assert self.leases is not None
                    await nursery.start(self.leases.run)
                    api_leases = self.leases
                if self.power is not None:
                    await nursery.start(self.power.run)
                await nursery.start(expire_results_every, self.queue, config.job_result_ttl)
                if api_port is not None:
                    from stratumkit.api.app import serve_api
                    from stratumkit.server.operator import PoolOperator

                    self.api_port = await nursery.start(
                        functools.partial(
                            serve_api,
                            self.pool,
                            api_leases,
                            config.api_host,
                            api_port,
                            api_token=config.api_token,
                            shutdown_trigger=shutdown_trigger,
                            sock=api_socket,
                            tls=self.api_tls,
                            operator=PoolOperator(
                                self.pool,
                                api_leases,
                                self.queue,
                                self._hashprice,
                            ),
                            power=power_api,
                        )
                    )
            task_status.started(self)

    def _hashprice(self) -> float | None:
        """The power prices' hashprice in force (None with none), for FPPS in USD: this process's
        power service, or on a shared plane the leader's while this front end leads."""
        power = self.power if self.plane is None else self.plane.power
        return None if power is None else power.hashprice()

    async def freeze(self) -> None:
        """Stopping: leases are kept as they are, not ended by the shutdown (and on a shared
        plane, this front end's rigs are suspended, to resume on another one)."""
        if self.plane is not None:
            await self.plane.freeze()
        if self.leases is not None:
            await self.leases.freeze()


@asynccontextmanager
async def open_app(config: PoolConfig) -> AsyncIterator[App]:
    """Build the parts (the queue is opened here and closed on exit); `App.run` starts them."""
    from stratumkit.lease.integrators import Integrators
    from stratumkit.lease.rig_auth import RigAuth
    from stratumkit.lease.service import LeaseService
    from stratumkit.power.prices import BadPrice
    from stratumkit.power.series import load_price_csv
    from stratumkit.power.service import PowerService
    from stratumkit.power.settings import power_settings

    config.validate()
    settings = power_settings(config.power)
    with hold_data_dir(config):
        source = make_source(config)
        await check_node(config)
        async with AsyncExitStack() as stack:
            queue = await stack.enter_async_context(open_queue(config))

            def make_service(store: LeaseStore | None) -> LeaseService:
                return LeaseService(
                    queue,
                    drain_timeout_s=config.lease_drain_timeout,
                    return_timeout_s=config.lease_return_timeout,
                    resume_grace_s=config.lease_resume_grace,
                    store=store,
                    check_jobs=config.check_jobs,
                    rig_auth=RigAuth(config.rig_secret, config.rig_secrets),
                    integrators=Integrators(config.integrator_tokens),
                )

            if config.lease_plane is not None:
                from stratumkit.plane.api import PlaneLeases, PlanePower

                series = None
                if settings.price_file is not None:  # read once, here: each leader replays it
                    try:
                        series = load_price_csv(settings.price_file)
                    except BadPrice as exc:
                        raise ConfigError(f"power.price_file: {exc}") from None

                def make_power(service: LeaseService) -> PowerService:
                    return PowerService(settings, pool, service, on_plane=True, series=series)

                plane = open_plane(config, queue, make_service, make_power)
                pool = Pool(config, source, extensions=plane.relay)
                plane_api = PlaneLeases(plane, Integrators(config.integrator_tokens))
                yield App(
                    config,
                    pool,
                    None,
                    queue,
                    None,
                    plane,
                    plane_api,
                    PlanePower(plane, curtail_wait_s=config.lease_return_timeout + 1.0),
                    api_tls=make_api_tls(config),
                )
                return
            store = await stack.enter_async_context(open_lease_store(config, queue))
            leases = make_service(store)
            pool = Pool(config, source, extensions=leases)
            try:
                power = PowerService(settings, pool, leases)
            except BadPrice as exc:  # the price file
                raise ConfigError(f"power.price_file: {exc}") from None
            yield App(config, pool, leases, queue, power, api_tls=make_api_tls(config))


async def serve(config: PoolConfig, *, task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the pool, its lease service and its HTTP API until SIGINT/SIGTERM; on SIGHUP reload
    the certificate."""
    stopping = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with open_app(config) as app, trio.open_nursery() as nursery:
            await nursery.start(functools.partial(app.run, shutdown_trigger=stopping.wait))
            task_status.started(app)
            tune_gc()

            async def wait_for_signal() -> None:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        app.reload_certificate()
                        continue
                    log.info("shutting down", signal=signal.Signals(signum).name)
                    stopping.set()  # event streams end cleanly first
                    await app.freeze()  # leases are kept as they are, not ended by the shutdown
                    await trio.sleep(0.2)
                    app.pool.shutdown()
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(wait_for_signal)


__all__ = [
    "App",
    "check_config",
    "make_source",
    "open_app",
    "open_lease_store",
    "open_plane",
    "open_queue",
    "serve",
    "tune_gc",
]
