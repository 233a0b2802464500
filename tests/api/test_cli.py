"""The integrator commands run as real processes against the live API, plus their pure parts.

They run `python -m stratumkit.cli` once that command carries the `lease`/`rig`/`job`/`stats`
subcommands, and `python -m stratumkit.api.cli` (the same parser, standalone) until then.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import stratumkit
from stratumkit.api import cli
from stratumkit.cli import build_parser as stratumkit_parser
from tests.support.ports import refused_port

from .conftest import MakeStack, Stack, connect_rig

#: A child interpreter importing stratumkit takes seconds on a machine whose cores are all busy.
CHILD_TIMEOUT = 60.0

ROOT = Path(stratumkit.__file__).resolve().parent.parent


def _wired() -> bool:
    for action in stratumkit_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return "lease" in action.choices
    return False


MODULE = "stratumkit.cli" if _wired() else "stratumkit.api.cli"


async def run(
    *args: str, api: str | None = None, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`stratumkit ARGS...` in a child process (with --api unless `api` is None)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STRATUMKIT_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    environ.update(env or {})
    argv = [sys.executable, "-m", MODULE, *args, *(["--api", api] if api else [])]
    with trio.fail_after(CHILD_TIMEOUT):
        return await trio.run_process(
            argv, stdin=stdin, capture_stdout=True, capture_stderr=True, check=False, env=environ
        )


def in_process(argv: list[str]) -> int:
    """`main(argv)` as the process would end: its return value, or SystemExit's code."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


async def test_commands_against_the_live_api(stack: Stack, nursery: trio.Nursery, tmp_path: Path) -> None:
    await connect_rig(nursery, stack, "rig-a")
    api = stack.url

    rigs = await run("rig", "ls", api=api)
    assert rigs.returncode == 0, rigs.stderr
    header, row = rigs.stdout.decode().splitlines()
    assert header.split()[:3] == ["RIG", "WORKER", "MODE"]
    assert row.split()[:3] == ["rig-a", "rig-a.gpu", "mining"]

    created = await run(
        "lease",
        "create",
        "--count",
        "1",
        "--queue",
        "embed",
        "--duration",
        "2m",
        "--gpu-model",
        "RTX 4090",
        "--owner",
        "ann",
        "--rig",
        "rig-a",
        "--availability",
        "0.99",
        "--json",
        api=api,
    )
    assert created.returncode == 0, created.stderr
    lease = json.loads(created.stdout)
    lease_id = lease["lease_id"]
    assert (lease["state"], lease["owner"], lease["queue"]) == ("draining", "ann", "embed")
    assert lease["selector"]["rigs"] == ["rig-a"] and lease["sla"]["target"] == 0.99
    assert stack.leases.lease_view(lease_id)["remaining_s"] > 110

    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text('{"input": ["a"]}\n\n{"input": ["b"]}\n')
    commands = {
        "ls": (("lease", "ls", "--state", "draining"), b""),
        "extend": (("lease", "extend", lease_id, "1h", "--json"), b""),
        "one": (("job", "submit", "embed", "--json-payload", '{"input": ["hi"]}'), b""),
        "file": (("job", "submit", "embed", "--file", str(jobs_file), "--json"), b""),
        "piped": (("job", "submit", "embed", "--file", "-"), b'{"input": ["c"]}\n'),
    }
    done: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def one(name: str) -> None:
        args, stdin = commands[name]
        done[name] = await run(*args, api=api, stdin=stdin)

    async with trio.open_nursery() as parallel:  # independent commands: run them side by side
        for name in commands:
            parallel.start_soon(one, name)
    for name, result in done.items():
        assert result.returncode == 0, (name, result.stderr)

    lines = done["ls"].stdout.decode().splitlines()
    assert lines[0].split()[:4] == ["LEASE", "STATE", "QUEUE", "RIGS"]
    assert lines[1].split()[:4] == [lease_id, "draining", "embed", "rig-a"]
    assert lines[0].split()[7] == "SLA" and re.fullmatch(r"\d+\.\d%/99% \+\d+s", " ".join(lines[1].split()[7:9]))
    assert json.loads(done["extend"].stdout)["remaining_s"] > 3600
    assert len(json.loads(done["file"].stdout)["job_ids"]) == 2
    assert (await stack.leases.queue.stats("embed")).ready == 4
    job_id = done["one"].stdout.decode().strip()

    got = await run("job", "get", job_id, api=api)
    assert got.returncode == 0 and got.stdout.decode().split() == [job_id, "pending"]
    stats = await run("stats", api=api)
    assert stats.returncode == 0, stats.stderr
    text = stats.stdout.decode()
    assert "connections      1" in text and "live leases      1" in text
    assert "rigs             1" in text
    cancelled = await run("lease", "cancel", lease_id, api=api)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.decode().splitlines()[1].split()[:2] == [lease_id, "returning"]


async def test_a_refusal_exits_1_with_the_api_message(stack: Stack) -> None:
    unknown = await run("lease", "cancel", "lease-9", env={"STRATUMKIT_API": stack.url})
    assert unknown.returncode == 1 and unknown.stdout == b""
    assert unknown.stderr.decode().strip() == ("stratumkit lease cancel: no lease 'lease-9' (HTTP 404)")


async def test_failures_in_process(
    make_stack: MakeStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = await make_stack(api_token="t0ken")
    monkeypatch.setenv("STRATUMKIT_API", stack.url)
    monkeypatch.setenv("STRATUMKIT_API_TOKEN", "t0ken")

    async def main(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()  # drop what the server logged before
        code = await trio.to_thread.run_sync(in_process, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await main("lease", "create", "--count", "1", "--queue", "q", "--duration", "60")
    assert code == 1 and out == "" and "idle rig" in err and err.endswith("(HTTP 400)\n")
    code, out, err = await main("stats", "--token", "wrong")
    assert code == 1 and "(HTTP 401)" in err
    code, out, err = await main("stats", "--json")  # the token from the environment
    assert code == 0 and json.loads(out)["leases"]["rigs"] == 0

    code, out, err = await main("job", "submit", "q", "--json-payload", "{nope")
    assert code == 2 and "--json-payload: not JSON" in err
    (tmp_path / "bad.jsonl").write_text('{"ok": 1}\n[2]\n')
    code, out, err = await main("job", "submit", "q", "--file", str(tmp_path / "bad.jsonl"))
    assert code == 2 and "bad.jsonl:2: a job payload must be a JSON object" in err
    code, out, err = await main("job", "submit", "q", "--file", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err
    code, out, err = await main("job", "submit", "q", "--file", str(tmp_path / "bad.jsonl"), "--job-id", "x")
    assert code == 2 and "--job-id goes with --json-payload" in err
    assert (await stack.leases.queue.stats("q")).ready == 0  # nothing was sent

    code, out, err = await main("job", "get", "never", "--wait", "1")
    assert code == 1 and "unknown job 'never' (HTTP 404)" in err
    job_id = await stack.leases.enqueue("q", {"n": 1})
    code, out, err = await main("job", "get", job_id, "--wait", "0.3")
    assert code == 1 and f"job {job_id} not done after 0.3 s" in err

    code, out, err = await main("lease", "create", "--queue", "q")
    assert code == 2 and "--count" in err
    with refused_port() as port:
        code, out, err = await main("rig", "ls", "--api", f"http://127.0.0.1:{port}")
    assert code == 1 and f"cannot reach the API at http://127.0.0.1:{port}" in err


def test_durations() -> None:
    assert [cli.duration(t) for t in ("90", "90s", "1.5m", "2h", "1d", " 3 h ")] == [
        90,
        90,
        90,
        7200,
        86400,
        10800,
    ]
    for bad in ("", "-5", "0", "5w", "h", "1e999"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.duration(bad)


def test_text_helpers() -> None:
    assert cli.table(("A", "LONGER"), [("x", None), ("wide-cell", 3)]).splitlines() == [
        "A          LONGER",
        "x          -",
        "wide-cell  3",
    ]
    assert [cli.hashrate_text(h) for h in (0, 999, 1.5e9, 2.5e15, 7e20)] == [
        "0 H/s",
        "999 H/s",
        "1.5 GH/s",
        "2.5 PH/s",
        "7e+05 PH/s",
    ]


def test_parser_shape() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["job", "submit", "q", "--json-payload", "{}", "--job-id", "j", "--json"])
    assert (args.queue, args.json_payload, args.job_id, args.as_json) == ("q", "{}", "j", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["job", "submit", "q", "--json-payload", "{}", "--file", "x"])
    with pytest.raises(SystemExit):
        parser.parse_args(["lease"])  # a subcommand is required
    args = parser.parse_args(["lease", "ls", "--state", "serving", "--state", "draining"])
    assert args.state == ["serving", "draining"]
