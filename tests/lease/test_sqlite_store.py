"""The SQLite lease store: what a save promises survives kill -9, and restores a controller."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from stratumkit.lease import DivertRig, LeaseController, LeaseSpec, LeaseState, RigCapabilities
from stratumkit.lease.sqlite_store import open_sqlite_lease_store
from stratumkit.lease.store import LeaseStoreError
from tests.support.processes import child_env

Caps = Callable[..., RigCapabilities]
Spec = Callable[..., LeaseSpec]
CHILD = Path(__file__).with_name("lease_store_kill_child.py")


def serving_controller(caps: Caps, spec: Spec) -> LeaseController:
    c = LeaseController(next_token=5)
    for rig_id in ("a", "b", "c"):
        c.register_rig(rig_id, f"w.{rig_id}", caps(), 0.0)
    _, actions = c.create(spec(2, 100.0), 1.0, lease_id="lease-x")
    for d in actions:
        if isinstance(d, DivertRig):
            c.rig_serving(d.rig_id, d.token, 2.0)
            c.record_job("lease-x", d.rig_id, jobs=2)
    return c


async def test_nothing_saved_loads_none(tmp_path: Path) -> None:
    async with open_sqlite_lease_store(tmp_path / "leases.sqlite", offload=False) as store:
        assert await store.load() is None


async def test_save_then_load_restores_the_controller(tmp_path: Path, caps: Caps, spec: Spec) -> None:
    c = serving_controller(caps, spec)
    async with open_sqlite_lease_store(tmp_path / "leases.sqlite") as store:
        await store.save(c.snapshot(10.0), 1000.0)
        await store.touch(1003.5)
    async with open_sqlite_lease_store(tmp_path / "leases.sqlite") as store:
        stored = await store.load()
    assert stored is not None
    assert (stored.saved_at, stored.alive_at, stored.ran_after_save_s) == (1000.0, 1003.5, 3.5)
    r = LeaseController.restore(stored.snapshot, 10.0)
    assert r.leases() == c.leases() and r.next_token == c.next_token
    assert [rig.rig_id for rig in r.rigs()] == ["a", "b", "c"]
    assert r.usage("lease-x", 10.0).jobs_done == 4


async def test_only_changes_are_written_and_a_new_engine_rewrites_all(tmp_path: Path, caps: Caps, spec: Spec) -> None:
    path = tmp_path / "leases.sqlite"
    c = serving_controller(caps, spec)
    writes: list[str] = []
    async with open_sqlite_lease_store(path, offload=False) as store:
        await store.save(c.snapshot(10.0), 1.0)
        store._conn.set_trace_callback(writes.append)
        c.record_job("lease-x", "a")  # one lease row changes, no rig row does
        await store.save(c.snapshot(11.0), 2.0)
    upserts = [w for w in writes if w.startswith("INSERT OR REPLACE INTO leases") or "INTO rigs" in w]
    assert len(upserts) == 1 and "INTO leases" in upserts[0]
    # a later process starts over: rows of the old snapshot that are gone are not kept
    fresh = LeaseController()
    fresh.register_rig("z", "w.z", caps(), 0.0)
    async with open_sqlite_lease_store(path, offload=False) as store:
        await store.save(fresh.snapshot(0.0), 3.0)
        stored = await store.load()
    assert stored is not None
    assert stored.snapshot["leases"] == [] and [r["rig_id"] for r in stored.snapshot["rigs"]] == ["z"]


async def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(LeaseStoreError, match="something else"):
        async with open_sqlite_lease_store(path):
            pass


async def test_a_corrupt_row_is_a_store_error(tmp_path: Path, caps: Caps, spec: Spec) -> None:
    path = tmp_path / "leases.sqlite"
    async with open_sqlite_lease_store(path, offload=False) as store:
        await store.save(serving_controller(caps, spec).snapshot(1.0), 1.0)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE leases SET data = x'c1'")  # 0xc1: never valid msgpack
    async with open_sqlite_lease_store(path, offload=False) as store:
        with pytest.raises(LeaseStoreError, match="corrupt"):
            await store.load()


def test_every_returned_save_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite"
    promised: list[tuple[str, int]] = []
    command = [sys.executable, str(CHILD), str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=child_env()) as child:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        while len(promised) < 40 and time.monotonic() < deadline:  # the child saves as fast as it can
            line = child.stdout.readline()
            if not line:
                break
            _, lease_id, token = line.split()
            promised.append((lease_id, int(token)))
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        promised.extend((lid, int(tok)) for _, lid, tok in (ln.split() for ln in child.stdout.read().splitlines()))
    assert len(promised) >= 40, "the child did not get going"

    async def load() -> LeaseController:
        async with open_sqlite_lease_store(path, offload=False) as store:
            stored = await store.load()
        assert stored is not None
        return LeaseController.restore(stored.snapshot, 0.0)

    restored = trio.run(load)
    ids = [lease.lease_id for lease in restored.leases()]
    assert ids[: len(promised)] == [lid for lid, _ in promised]  # every promised lease, in order
    assert len(ids) <= len(promised) + 1  # at most the save the kill cut short, whole
    assert restored.next_token >= promised[-1][1]
    assert all(lease.state is LeaseState.DRAINING for lease in restored.leases())
