"""Lease two rigs, push embedding jobs to them, collect the results, release the rigs.

Start a pool and two agents first (each in its own terminal), e.g.:

    stratumkit serve
    stratumkit agent --worker rig1.a --gpu "RTX 4090:24576" --inference minilm
    stratumkit agent --worker rig2.a --gpu "RTX 4090:24576" --inference minilm

then run:  python examples/lease_two_rigs.py  [--api http://127.0.0.1:8080]
"""

from __future__ import annotations

import argparse
import os

import trio

from stratumkit.client import PoolClient

SENTENCES = [
    "The pool found a block at height 812,345.",
    "GPU rigs can switch between hashing and inference.",
    "Embeddings map text to vectors.",
    "A lease diverts rigs to an inference queue for a while.",
]


async def main(api: str, token: str | None) -> None:
    async with PoolClient(api, token) as pool:
        rigs = [r for r in await pool.rigs() if r["mode"] == "mining"]
        print(f"{len(rigs)} rig(s) mining: {', '.join(r['rig_id'] for r in rigs)}")

        lease = await pool.create_lease(count=2, queue="demo-embeddings", duration_s=300, model="all-MiniLM-L6-v2")
        lease_id = lease["lease_id"]
        print(f"lease {lease_id}: {lease['state']} on {[r['rig_id'] for r in lease['rigs']]}")

        with trio.fail_after(30):
            while (await pool.lease(lease_id))["state"] != "serving":
                await trio.sleep(0.05)
        print("rigs are serving")

        job_ids = await pool.submit_jobs(
            "demo-embeddings",
            [{"kind": "embeddings", "model": "all-MiniLM-L6-v2", "input": [text]} for text in SENTENCES],
        )
        for job_id, text in zip(job_ids, SENTENCES, strict=True):
            done = await pool.wait_job(job_id, timeout=60)
            vector = done["result"]["data"][0]["embedding"]
            print(f"{done['rig']:>12}  {text[:48]:<48}  [{vector[0]:+.3f}, {vector[1]:+.3f}, ...] ({len(vector)}-d)")

        released = await pool.cancel_lease(lease_id)
        usage = released["usage"]
        print(
            f"lease {lease_id} {released['state']}: {usage['jobs_done']} jobs, "
            f"{usage['gpu_seconds']:.1f} GPU-seconds, {usage['hashes_foregone']:.3g} hashes foregone"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=os.environ.get("STRATUMKIT_API", "http://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("STRATUMKIT_API_TOKEN"))
    args = parser.parse_args()
    trio.run(main, args.api, args.token)
