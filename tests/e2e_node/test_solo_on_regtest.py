"""Solo mode (`stratumkit serve --solo`) against the real regtest node: each miner's coinbase pays
the address in its worker name, and the blocks it finds pay it on the chain."""

from __future__ import annotations

import secrets

import trio

from stratumkit.agent.work import MinerJob
from stratumkit.chain.address import Address, AddressKind, Network, address_to_script
from stratumkit.chain.transaction import parse_transaction
from stratumkit.hashing import scan_nonces
from stratumkit.protocol.errors import ErrorCode
from stratumkit.protocol.events import AuthorizeResult, ErrorReply, Event, SubmitResult
from tests.node.regtest import RegtestNetwork
from tests.support.miners import ScanningMiner
from tests.support.waiting import wait_until

from .conftest import StartPool
from .harness import SHARE_DIFFICULTY, coinbase_of, new_address


def refused(reply: Event, code: ErrorCode) -> bool:
    """Whether the pool said no to a request, with this error code."""
    if isinstance(reply, SubmitResult):
        return not reply.accepted and reply.code == code
    if isinstance(reply, AuthorizeResult):
        return not reply.ok and reply.code == code
    return isinstance(reply, ErrorReply) and reply.code == code


async def test_solo_miners_are_paid_to_their_own_addresses(
    start_pool: StartPool, healthy_regtest: RegtestNetwork, nursery: trio.Nursery
) -> None:
    alice, bob = new_address(), new_address()
    pool = await start_pool(solo=True)  # no payout address: solo pays the workers
    a = await ScanningMiner.connect(nursery, pool.port, f"{alice}.rig1", mine=False)
    b = await ScanningMiner.connect(nursery, pool.port, f"{bob}.rig2", mine=False)
    await a.wait_for(lambda: a.job, what="work")
    await b.wait_for(lambda: b.job, what="work")
    assert a.job is not None and b.job is not None

    # The same work, each with a coinbase paying its own miner.
    for miner, address in ((a, alice), (b, bob)):
        assert miner.job is not None
        tx = parse_transaction(coinbase_of(miner.job))
        assert [o.script_pubkey for o in tx.outputs] == [address_to_script(address, Network.REGTEST)]
    fields = ("prevhash", "merkle_branch", "version", "nbits", "ntime")
    assert [getattr(a.job, f) for f in fields] == [getattr(b.job, f) for f in fields]
    assert a.job.job_id != b.job.job_id
    assert (
        parse_transaction(coinbase_of(a.job)).outputs[0].value == parse_transaction(coinbase_of(b.job)).outputs[0].value
    )

    # A share of bob's job from alice's connection is refused as stale (21), even one solving a
    # block: it would pay bob, and credit alice.
    job = MinerJob.from_notify(b.job, SHARE_DIFFICULTY)
    assert a.client.conn.extranonce1 is not None
    extranonce2 = secrets.token_bytes(4)
    header76 = job.header76(bytes.fromhex(a.client.conn.extranonce1), extranonce2)
    (nonce,) = scan_nonces(header76, 0, 1 << 20, job.network_target, max_found=1)
    share = (job.job_id, extranonce2.hex(), f"{job.ntime:08x}", f"{nonce:08x}")
    reply = await a.client.call(a.client.conn.submit, f"{alice}.rig1", *share)
    assert refused(reply, ErrorCode.JOB_NOT_FOUND), reply
    a.submitted.clear()  # answered to the call above, not to the miner

    # Workers: another rig of the same address may join the connection; another address may
    # not (one coinbase per connection), nor may a name that is no regtest address.
    ok = await a.client.call(a.client.conn.authorize, f"{alice}.rig9", "x")
    assert isinstance(ok, AuthorizeResult) and ok.ok, ok
    mainnet = Address(AddressKind.P2PKH, Network.MAINNET, secrets.token_bytes(20)).encode()
    for name, why in (
        (f"{bob}.rig3", "one address per connection"),
        (f"{mainnet}.rig", "solo mode pays the worker's address"),
        ("not-an-address.rig", "solo mode pays the worker's address"),
    ):
        reply = await a.client.call(a.client.conn.authorize, name, "x")
        assert refused(reply, ErrorCode.UNAUTHORIZED), (name, reply)
        assert why in str(getattr(reply, "message", "")), (name, reply)

    # Each finds a block, in turn; on the node, each block pays its finder.
    # (every other hash is a block on regtest: each miner starts only once it works on the tip)
    for miner in (a, b):
        ledger = pool.ledger()
        if ledger:
            tip, m = ledger[0].hash, miner
            await miner.wait_for(lambda: tip in m.clean_tips(), what="a clean job on the last block")  # noqa: B023
        miner.start_mining()
        await miner.wait_for(miner.has_accepted, what="a block")
        await miner.quiesce()
    assert all(r.accepted for m in (a, b) for r in m.results.values()), [
        (m.worker, r) for m in (a, b) for r in m.results.values() if not r.accepted
    ]
    await wait_until(lambda: sum(s == "confirmed" for s in pool.ledger_status().values()) >= 2)
    async with healthy_regtest.rpc as node1:
        paid = {}
        for found in pool.ledger():
            if found.status != "confirmed":
                continue  # a sibling that lost its height
            block = await node1.call("getblock", found.hash, 2)
            (out,) = block["tx"][0]["vout"]
            paid[found.worker] = out["scriptPubKey"]["addresses"]
    assert paid == {f"{alice}.rig1": [alice], f"{bob}.rig2": [bob]}
