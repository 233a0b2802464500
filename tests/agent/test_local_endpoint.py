"""The relay's trio shell over memory streams, on an autojump clock: a local miner (our client role)
mines through the endpoint, and the test plays the pool with the protocol's server role."""

from __future__ import annotations

import trio
import trio.testing

from stratumkit.agent.local_endpoint import LocalEndpoint
from stratumkit.agent.relay import Relay
from stratumkit.agent.stratum import StratumClient
from stratumkit.agent.work import MinerJob
from stratumkit.protocol.events import Authorize, Event, Notify, SetDifficulty, Submit, SubmitResult, Subscribe
from stratumkit.protocol.server import ServerConnection
from tests.agent.test_relay import NOTIFY
from tests.support.shares import make_share


class Pool:
    """The far end of the agent's upstream stream: answers the handshake, sends one job, takes shares."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = ServerConnection()
        self.submits: list[Submit] = []

    async def run(self) -> None:
        while data := await self.stream.receive_some(65536):
            for event in self.conn.receive_data(bytes(data)):
                self._answer(event)
            await self.stream.send_all(self.conn.data_to_send())

    def _answer(self, event: Event) -> None:
        if isinstance(event, Subscribe):
            self.conn.respond_subscribe(event.id, "aabbccdd", 4)
        elif isinstance(event, Authorize):
            self.conn.respond(event.id, True)
            self.conn.send_set_difficulty(0.0001)
            self.conn.send_notify(NOTIFY)
        elif isinstance(event, Submit):
            self.submits.append(event)
            self.conn.respond(event.id, True)


async def test_a_local_miners_share_goes_up_as_the_agents_worker_and_its_answer_comes_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    relay = Relay()
    endpoint = LocalEndpoint(relay, "rig1.w")
    pool_side, agent_side = trio.testing.memory_stream_pair()
    miner_side, endpoint_side = trio.testing.memory_stream_pair()
    pool = Pool(pool_side)
    jobs: list[Event] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.run)
        upstream = StratumClient(agent_side, on_event=endpoint.on_event)
        nursery.start_soon(upstream.read_loop)
        sub = await upstream.handshake("rig1.w")
        relay.upstream_subscribed(sub.extranonce1, sub.extranonce2_size, keep_jobs=True)
        nursery.start_soon(endpoint.pump_upstream, upstream)
        nursery.start_soon(endpoint.handle, endpoint_side)

        miner = StratumClient(miner_side, on_event=jobs.append)
        nursery.start_soon(miner.read_loop)
        local = await miner.handshake("anyone")
        assert (local.extranonce1, local.extranonce2_size) == ("aabbccdd00", 3)
        while not any(isinstance(e, Notify) for e in jobs):
            await trio.sleep(0.01)
        difficulty = next(e for e in jobs if isinstance(e, SetDifficulty)).difficulty
        job = MinerJob.from_notify(next(e for e in jobs if isinstance(e, Notify)), difficulty)
        share = make_share(job, bytes.fromhex(local.extranonce1), b"\x00\x00\x07", target=job.share_target)
        reply = await miner.call(miner.conn.submit, "anyone", job.job_id, share.extranonce2, share.ntime, share.nonce)
        assert isinstance(reply, SubmitResult) and reply.accepted
        (up,) = pool.submits
        assert (up.worker, up.extranonce2, up.nonce) == ("rig1.w", "00000007", share.nonce)

        relay.withhold()  # a divert by withholding work: the local miner is cut off
        endpoint.wake()
        with trio.fail_after(5):
            await miner.closed.wait()
        nursery.cancel_scope.cancel()
