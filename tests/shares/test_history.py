"""The share history's counters and rounds (sans-I/O), and its store's round trip in SQLite."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from stratumkit.shares.history import MINUTE, Round, RoundState, ShareHistory
from stratumkit.shares.history_store import HistoryStore
from stratumkit.shares.log import ShareLog, ShareRecord, read_accepted, read_records


def record(t: float, worker: str = "a.1", difficulty: float = 1.0, block: bool = False) -> ShareRecord:
    return ShareRecord(t, worker, "j", b"", b"", 0, 0, 0, difficulty, b"", block)


def test_a_round_holds_the_shares_timed_up_to_its_block() -> None:
    history = ShareHistory()
    history.on_accepted("a.1", 1.0, 100.0, False)
    history.on_accepted("a.1", 2.0, 101.0, True)  # the block's own share, timed before found_at
    history.on_block("b1", 101.5)
    history.on_accepted("a.2", 4.0, 101.0, False)  # same reactor pass: same time as the block share
    assert history.open_round("b1") == Round("b1", 101.5, 7.0, 3)
    history.on_accepted("a.1", 8.0, 102.0, False)  # after found_at: the next round
    taken = history.take(103.0, share_seq=4)
    assert taken.rounds == [Round("b1", 101.5, 7.0, 3)]
    assert (taken.open_round.difficulty, taken.open_round.shares, taken.open_round.since) == (8.0, 1, 101.5)
    assert taken.share_seq == 4
    assert history.open_round("b1") is None


def test_blocks_in_one_pass_close_one_full_round_and_empty_ones() -> None:
    history = ShareHistory()
    history.on_accepted("a.1", 3.0, 10.0, True)
    history.on_block("b1", 10.1)
    history.on_block("b2", 10.2)
    assert history.open_round("b2") == Round("b2", 10.2, 0.0, 0)
    taken = history.take(11.0, share_seq=1)
    assert taken.rounds == [Round("b1", 10.1, 3.0, 1), Round("b2", 10.2, 0.0, 0)]


def test_minute_rows_per_worker_and_rejects() -> None:
    history = ShareHistory()
    history.on_accepted("a.1", 1.0, 60.0, False)
    history.on_accepted("a.1", 1.0, 119.0, True)
    history.on_accepted("a.2", 0.5, 120.0, False)
    history.on_rejected("a.2", "duplicate", 121.0)
    rows = history.unflushed()
    assert rows == {1: {"a.1": [2, 0, 2.0, 1, 119.0]}, 2: {"a.2": [1, 1, 0.5, 0, 120.0]}}
    taken = history.take(130.0, share_seq=3)
    assert taken.minutes == rows and taken.reasons == {("a.2", "duplicate"): 1}
    assert history.unflushed() == {}
    history.on_accepted("a.2", 0.5, 125.0, False)
    history.give_back(taken)  # a failed write: counted again, with what came since
    assert history.unflushed() == {1: {"a.1": [2, 0, 2.0, 1, 119.0]}, 2: {"a.2": [2, 1, 1.0, 0, 125.0]}}


# A run: (seconds since the previous share, difficulty, a block found right after it?)
steps = st.lists(st.tuples(st.floats(0.0, 90.0), st.sampled_from([0.5, 1.0, 2.0]), st.booleans()), max_size=60)


@given(steps, st.integers(0, 60))
def test_a_restart_rebuilds_the_rounds_and_counts_kept_in_memory(
    run: list[tuple[float, float, bool]], cut: int
) -> None:
    """Live counting with a flush after `cut` shares, then a crash and a rebuild from the flushed
    state plus the share log's later records, gives the same rounds and minute counts as
    counting everything live."""
    t = 1000.0
    records: list[ShareRecord] = []
    blocks: list[tuple[float, str]] = []
    found_after: dict[int, tuple[float, str]] = {}  # record index -> the block its share found
    for gap, difficulty, block in run:
        t += gap
        records.append(record(t, "a.1" if len(records) % 3 else "a.2", difficulty, block))
        if block:
            blocks.append((t + 0.001, f"b{len(blocks)}"))
            found_after[len(records) - 1] = blocks[-1]
    end = t + 1.0
    cut = min(cut, len(records))

    def live(history: ShareHistory, start: int, stop: int) -> None:
        for i in range(start, stop):
            r = records[i]
            history.on_accepted(r.worker, r.difficulty, r.time, r.block)
            if i in found_after:
                history.on_block(found_after[i][1], found_after[i][0])

    whole = ShareHistory()
    live(whole, 0, len(records))
    expected = whole.take(end, len(records))

    first = ShareHistory()
    live(first, 0, cut)
    flushed_at = records[cut - 1].time if cut else 0.0  # a flush sees no share timed before it later
    stored = first.take(flushed_at, cut)
    closed = {r.block_hash for r in stored.rounds}
    since = stored.open_round.since
    rebuilt = ShareHistory(
        RoundState(stored.open_round.difficulty, stored.open_round.shares, since),
        [(f, n) for f, n in blocks if f > since and n not in closed],
    )
    rebuilt.fold((r.time, r.worker, r.difficulty, r.block) for r in records[cut:])
    rest = rebuilt.take(end, len(records))

    assert stored.rounds + rest.rounds == expected.rounds
    merged: dict[int, dict[str, list[float]]] = {}
    for part in (stored.minutes, rest.minutes):
        for minute, rows in part.items():
            for worker, row in rows.items():
                into = merged.setdefault(minute, {}).setdefault(worker, [0, 0, 0.0, 0, 0.0])
                for i in range(4):
                    into[i] += row[i]
                into[4] = max(into[4], row[4])
    assert merged == expected.minutes


def test_the_store_keeps_buckets_totals_rounds_and_the_sequence(tmp_path: Path) -> None:
    history = ShareHistory()
    history.on_accepted("a.1", 1.0, 3600.0 + 5, False)
    history.on_accepted("a.2", 3.0, 3600.0 + MINUTE + 5, True)
    history.on_block("b1", 3600.0 + MINUTE + 6)
    history.on_rejected("a.1", "low_difficulty", 3600.0 + MINUTE + 7)
    store = HistoryStore(tmp_path / "history.sqlite")
    store.write(history.take(3600.0 + MINUTE + 10, share_seq=2), now=3600.0 + MINUTE + 10)
    history.on_accepted("a.1", 1.0, 3600.0 + MINUTE + 20, False)
    store.write(history.take(3600.0 + MINUTE + 30, share_seq=3), now=3600.0 + MINUTE + 30)
    store.close()

    store = HistoryStore(tmp_path / "history.sqlite")
    assert store.share_seq() == 3
    assert store.open_round() == RoundState(1.0, 1, 3600.0 + MINUTE + 6)
    assert store.closed_rounds() == {"b1"}
    assert store.rounds(["b1", "b2"]) == {"b1": Round("b1", 3600.0 + MINUTE + 6, 4.0, 2)}
    minutes = [(p.t, p.accepted, p.rejected, p.difficulty) for p in store.pool_series(MINUTE, 0)]
    assert minutes == [(3600, 1, 0, 1.0), (3660, 2, 1, 4.0)]
    hours = [(p.t, p.accepted, p.rejected, p.difficulty) for p in store.pool_series(3600, 0)]
    assert hours == [(3600, 3, 1, 5.0)]
    assert store.top_workers(0, 1) == [("a.2", 3.0)]
    assert store.top_workers(3600.0 + 3600, 5) == []  # the hour after
    assert [(p.t, p.accepted) for p in store.worker_series(MINUTE, 0, ["a.1"])["a.1"]] == [(3600, 1), (3660, 1)]
    totals = {t.worker: (t.accepted, t.rejected, t.difficulty, t.blocks) for t in store.totals()}
    assert totals == {"a.1": (2, 1, 2.0, 0), "a.2": (1, 0, 3.0, 1)}
    assert store.rejects() == [("a.1", "low_difficulty", 1)]
    store.close()


async def test_read_accepted_gives_what_read_records_gives_from_any_sequence_number(tmp_path: Path) -> None:
    log = ShareLog(tmp_path / "shares", segment_bytes=1000, fsync=False)  # rotates every ~14 records
    for i in range(100):
        log.append(record(1000.0 + i, f"a.{i % 3}", 0.5 * (i % 4 + 1), i % 7 == 0).pack())
        if i % 9 == 0:
            log.sync_now()
    log.sync_now()
    assert len(list((tmp_path / "shares").glob("shares-*.log"))) > 3
    for start in (0, 1, 19, 20, 21, 57, 99, 100, 150):
        expected = [(r.time, r.worker, r.difficulty, r.block) for r in read_records(tmp_path / "shares", start)]
        assert list(read_accepted(tmp_path / "shares", start)) == expected
        assert len(expected) == max(0, 100 - start)
