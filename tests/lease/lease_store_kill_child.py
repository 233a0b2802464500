"""Child process for the lease store's kill -9 test: changes leases and saves until it is killed.

Each round creates a lease (a rig registers first when none is idle), saves the snapshot, and
prints one flushed line per save that returned, so the parent knows what was promised:
    saved <lease_id> <next_token>
"""

from __future__ import annotations

import sys
import time

import trio

from stratumkit.lease import GPU, LeaseController, LeaseSpec, RigCapabilities, Selector
from stratumkit.lease.ids import new_lease_id
from stratumkit.lease.sqlite_store import open_sqlite_lease_store

CAPS = RigCapabilities(gpus=(GPU("RTX 4090", 24576),), models=(), hashrate=1e9, power_w=300.0)


async def main(path: str) -> None:
    controller = LeaseController()
    async with open_sqlite_lease_store(path) as store:
        n = 0
        while True:
            n += 1
            now = float(n)
            controller.register_rig(f"rig-{n}", f"w.{n}", CAPS, now)
            lease, _ = controller.create(LeaseSpec(Selector(1), "q", 600.0), now, lease_id=new_lease_id())
            await store.save(controller.snapshot(now), time.time())
            print(f"saved {lease.lease_id} {controller.next_token}", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
