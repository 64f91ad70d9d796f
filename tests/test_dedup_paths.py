"""Dropping exact duplicates keeps each row's first occurrence, in order, on both code paths
(a zero-copy slice when the distinct rows come first, as on a re-load; a gather otherwise)."""

from __future__ import annotations

import pyarrow as pa

from worker.elexon.dedup import drop_duplicates


def _table(keys: list[str]) -> pa.Table:
    return pa.table({"_hash_key": keys, "n": list(range(len(keys)))})


def test_a_reload_keeps_the_stored_rows_and_drops_every_fetched_copy() -> None:
    stored, fetched = ["a", "b", "c"], ["c", "a", "b", "a"]
    kept, dropped = drop_duplicates(_table(stored + fetched))
    assert kept.column("_hash_key").to_pylist() == stored
    assert kept.column("n").to_pylist() == [0, 1, 2]
    assert dropped == 4


def test_interleaved_duplicates_keep_first_occurrences_in_order() -> None:
    kept, dropped = drop_duplicates(_table(["b", "a", "b", "c", "a", "d"]))
    assert kept.column("_hash_key").to_pylist() == ["b", "a", "c", "d"]
    assert kept.column("n").to_pylist() == [0, 1, 3, 5]
    assert dropped == 2


def test_no_duplicates_and_no_rows_change_nothing() -> None:
    table = _table(["x", "y"])
    assert drop_duplicates(table) == (table, 0)
    empty = _table([])
    assert drop_duplicates(empty) == (empty, 0)
