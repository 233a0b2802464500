"""The supervisor of the agent's child processes, on real processes: crashes restarted with backoff
and their output kept (bounded), stop and resume, SIGSTOP and SIGCONT."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from stratumkit.agent.backoff import Backoff
from stratumkit.agent.child_process import StopMethod, SupervisedProcess, command_argv
from tests.support.waiting import wait_until


def state(pid: int) -> str:
    """The process state letter from /proc (T: stopped by a signal)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def test_a_crashing_child_is_restarted_with_backoff_and_its_last_lines_are_kept(nursery: trio.Nursery) -> None:
    child = SupervisedProcess(
        ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; exit 3"],
        log_lines=3,
        restart=Backoff(0.01, 0.04),
    )
    nursery.start_soon(child.run)
    await wait_until(lambda: child.crashes >= 3, what="three crashes")
    assert list(child.output) == ["line 3", "line 4", "line 5"]
    assert child.process is not None and child.starts >= 3


@pytest.mark.parametrize("method", [StopMethod.STOP, StopMethod.SIGNAL])
async def test_pause_and_resume_stop_or_freeze_the_child(nursery: trio.Nursery, method: StopMethod) -> None:
    child = SupervisedProcess(["sleep", "60"], method)
    nursery.start_soon(child.run)
    await wait_until(lambda: child.process is not None, what="a start")
    first = child.process
    assert first is not None
    child.pause()
    if method is StopMethod.STOP:
        await wait_until(lambda: first.returncode is not None, what="the child to stop")
        child.resume()
        await wait_until(lambda: child.starts == 2, what="a new start")
        assert child.crashes == 0  # a stop asked for is not a crash
    else:
        await wait_until(lambda: state(first.pid) == "T", what="SIGSTOP")
        child.resume()
        await wait_until(lambda: state(first.pid) != "T", what="SIGCONT")
        assert child.starts == 1


def test_commands_are_split_like_a_shell_and_placeholders_filled() -> None:
    argv = command_argv("cpuminer -a sha256d -o {url} -u '{user}.gpu 0'", {"url": "stratum+tcp://h:1", "user": "rig"})
    assert argv == ["cpuminer", "-a", "sha256d", "-o", "stratum+tcp://h:1", "-u", "rig.gpu 0"]
    with pytest.raises(ValueError, match="No closing quotation"):
        command_argv("miner 'open", {})
