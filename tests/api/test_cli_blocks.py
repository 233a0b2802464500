"""`stratumkit blocks` as a real process against the live API of a mined pool."""

from __future__ import annotations

import json

import trio

from .conftest import MakeStack
from .test_cli import run
from .test_operator_routes import mined_stack


async def test_blocks_table_json_and_pages(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await mined_stack(make_stack, nursery, 2)
    found = stack.pool.ledger.list()
    api = stack.url
    table, as_json, paged = await run("blocks", api=api), await run("blocks", "--json", api=api), None
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[0].split() == [
        "HEIGHT",
        "HASH",
        "WORKER",
        "FOUND",
        "(UTC)",
        "STATUS",
        "REWARD",
        "NET",
        "DIFF",
        "EFFORT",
    ]
    rows = lines[1 : 1 + len(found)]
    assert [row.split()[1] for row in rows] == [b.hash[:16] for b in found]  # newest first
    assert all(row.split()[6] == "50.00000000" and row.split()[-1].endswith("%") for row in rows)
    assert lines[1 + len(found)].startswith(f"7d: {len(found)} blocks, average effort ")
    assert as_json.returncode == 0, as_json.stderr
    page = json.loads(as_json.stdout)
    assert [b["hash"] for b in page["blocks"]] == [b.hash for b in found]

    paged = await run("blocks", "--limit", "1", "--json", api=api)
    first = json.loads(paged.stdout)
    assert len(first["blocks"]) == 1 and first["next"]
    older = await run("blocks", "--limit", "1", "--before", first["next"], api=api)
    assert older.returncode == 0, older.stderr
    assert older.stdout.decode().splitlines()[1].split()[1] == found[1].hash[:16]
    bad = await run("blocks", "--before", "nonsense", api=api)
    assert bad.returncode == 1 and "not a cursor" in bad.stderr.decode()
