"""`stratumkit bench wire`: the analysis on real miners' captured connections (and on the same
connections with what would cost a miner put in), and the recording proxy between a miner and a
real `stratumkit serve`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import trio

from stratumkit.bench.wire import Wire, analyse, record
from stratumkit.shares.log import read_records
from tests.protocol import vectors as v
from tests.support.miners import Miner
from tests.support.processes import ServeProcess
from tests.support.sessions import replay


def wires_of(capture: v.Capture) -> list[Wire]:
    return [Wire(t, 1, direction, line) for t, direction, line in capture.lines]


@pytest.mark.parametrize("capture", v.CAPTURES, ids=[capture.miner for capture in v.CAPTURES])
def test_every_real_share_is_found_credited_at_the_miners_target(capture: v.Capture) -> None:
    shares = replay(capture).recorder.shares
    [report] = analyse(wires_of(capture), shares)
    assert report.submitted == report.accepted == len(shares) > 0 and not report.rejected
    [subscribe] = [json.loads(line) for _, line in capture.miner_lines() if b'"mining.subscribe"' in line]
    assert report.agent == subscribe["params"][0]
    assert report.mismatched == report.unlogged == report.notification_replies == 0 and not report.above_network
    assert report.credited_sum == pytest.approx(report.target_sum) == sum(s.difficulty for s in shares)
    assert report.hashrate() == pytest.approx(report.target_sum * 2**32 / (capture.lines[-1][0] - capture.lines[0][0]))


def test_what_would_cost_a_miner_is_flagged() -> None:
    capture = v.CAPTURED_BFGMINER
    shares = replay(capture).recorder.shares
    wires = wires_of(capture)
    # A reply to bfgminer's suggest_target notification, before its subscribe answer.
    answered = [*wires[:2], Wire(0.0, 1, "<", b'{"id":null,"result":true,"error":null}\n'), *wires[2:]]
    assert analyse(answered, shares)[0].notification_replies == 1
    # The job sent at a share difficulty above its network difficulty (0.01 on this chain).
    above = [dataclasses.replace(w, line=w.line.replace(b"[0.00399994]", b"[0.02]")) for w in wires]
    assert analyse(above)[0].above_network == [capture.job_id]
    # The share credited at another difficulty than the one its job was sent at.
    under = [dataclasses.replace(shares[0], difficulty=0.001)]
    assert analyse(wires, under)[0].mismatched == 1
    # The share refused as low difficulty; and a share log that does not hold it.
    accept = b'{"id":1,"result":true,"error":null}\n'
    reject = b'{"id":1,"result":null,"error":[23,"Low difficulty share",null]}\n'
    refused = [dataclasses.replace(w, line=reject) if w.line == accept else w for w in wires]
    report = analyse(refused, shares)[0]
    assert report.accepted == 0 and dict(report.rejected) == {23: 1}
    assert analyse(wires, [])[0].unlogged == 1


async def test_the_proxy_records_a_miner_against_a_real_pool(nursery: trio.Nursery, tmp_path: Path) -> None:
    args = ("--port", "0", "--api-port", "0", "--data-dir", str(tmp_path), "--log-format", "json")
    pool = await ServeProcess.start(nursery, *args, "--start-difficulty", "0.0001")
    wires: list[Wire] = []
    port = await nursery.start(record, 0, "127.0.0.1", pool.port, wires)
    miner = await Miner.connect(nursery, port, "w.1")
    for _ in range(3):
        assert (await miner.submit(miner.share())).accepted
    [report] = analyse(wires, read_records(tmp_path / "shares"))
    assert report.submitted == report.accepted == 3 and not report.rejected
    assert report.mismatched == report.unlogged == 0
    assert report.credited_sum == pytest.approx(3 * 0.0001)
    # Every line crossed whole, in order, both ways; the connection's span is from its opening.
    said = [json.loads(w.line) for w in wires if w.direction == "<" and w.line]
    assert said[0]["id"] == 1 and said[0]["result"][2] == miner.client.conn.extranonce2_size
    assert wires[0].line == b"" and report.opened == wires[0].t
