"""All of a worker's table stores (every table, every partition) share one RocksDB budget."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
from prometheus_client import generate_latest

from stream_rec.config import Settings
from stream_rec.errors import ConfigError
from stream_rec.serving.metrics import WorkerMetrics
from stream_rec.serving.table_store import BudgetedStore, TableMemory, store_url

_MIB = 1 << 20
_PARTITIONS = 4


def _app(tmp_path: Path) -> faust.App:
    return faust.App("table-store-test", broker="kafka://localhost:1", datadir=str(tmp_path),
                     store="rocksdb://")


def _tables(app: faust.App, memory: TableMemory, names: tuple[str, ...]) -> list:
    return [app.Table(name, key_type=str, value_type=bytes, partitions=_PARTITIONS,
                      store=store_url(name), options=memory.table_options())
            for name in names]


def _databases(tables: list) -> list:
    return [table.data._db_for_partition(p) for table in tables for p in range(_PARTITIONS)]


def _memtable_bytes(db: object) -> int:
    return db.property_int_value("rocksdb.cur-size-all-mem-tables")  # type: ignore[attr-defined]


def test_tables_are_kept_by_the_budgeted_store_where_fausts_own_store_keeps_them(
        tmp_path: Path) -> None:
    app = _app(tmp_path)
    memory = TableMemory.of(cache_bytes=_MIB, write_buffer_bytes=4 * _MIB)
    [budgeted] = _tables(app, memory, ("users",))
    plain = app.Table("plain", key_type=str, value_type=bytes, partitions=_PARTITIONS)

    assert isinstance(budgeted.data, BudgetedStore)
    # an upgraded worker finds its databases where the previous version left them
    assert budgeted.data.partition_path(2) == plain.data.partition_path(2).with_name(
        "users-2.db")
    assert budgeted.data.partition_path(2).parent == Path(app.conf.tabledir)


def _peak_memtable_bytes(databases: list, writes: int) -> int:
    """The most memtable memory the databases held together while ``writes`` 1 kB values
    went round them (sampled every 200 writes)."""
    peak = 0
    for i in range(writes):
        databases[i % len(databases)][f"user-{i}".encode()] = b"v" * 1000
        if i % 200 == 0:
            peak = max(peak, sum(_memtable_bytes(db) for db in databases))
    return peak


def test_memtables_of_every_table_and_partition_stay_near_one_shared_budget(
        tmp_path: Path) -> None:
    own = _app(tmp_path / "own")  # faust's store: each database with its own memtables
    separate = [own.Table(name, key_type=str, value_type=bytes, partitions=_PARTITIONS,
                          options={"write_buffer_size": 4 * _MIB, "max_write_buffer_number": 2})
                for name in ("users", "latest-recs")]
    memory = TableMemory.of(cache_bytes=_MIB, write_buffer_bytes=8 * _MIB)
    shared = _tables(_app(tmp_path / "shared"), memory, ("users", "latest-recs"))

    # 40 MB round 8 databases of 4 MB memtables: separately they fill up to 32 MB and more
    assert _peak_memtable_bytes(_databases(separate), 40_000) > 24 * _MIB
    # the budget is soft (flushes run in the background; each memtable has its first
    # arena block), so allow it twice over
    assert 0 < _peak_memtable_bytes(_databases(shared), 40_000) < 16 * _MIB
    assert 0 < memory.usage()["memtables"] < 16 * _MIB


def test_reads_from_every_database_fill_one_block_cache_up_to_its_size(
        tmp_path: Path) -> None:
    app = _app(tmp_path)
    memory = TableMemory.of(cache_bytes=_MIB, write_buffer_bytes=4 * _MIB)
    databases = _databases(_tables(app, memory, ("users", "latest-recs")))
    for n, db in enumerate(databases):
        for i in range(2_000):
            db[f"user-{i}".encode()] = f"{n}:{i}".encode() * 50
        db.flush()

    assert memory.usage()["block_cache"] < 64 * 1024  # nothing read yet
    for n, db in enumerate(databases):
        assert all(db[f"user-{i}".encode()] == f"{n}:{i}".encode() * 50 for i in range(2_000))
    # eight databases' worth of blocks (~6 MB) went through one cache of 1 MiB
    assert _MIB // 2 < memory.usage()["block_cache"] <= _MIB + 64 * 1024


def test_a_budgeted_table_without_its_budget_fails_saying_what_to_pass(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = app.Table("users", key_type=str, value_type=bytes, partitions=_PARTITIONS,
                      store=store_url("users"), options={"write_buffer_size": _MIB})

    with pytest.raises(TypeError, match=r"needs options=TableMemory.of\(...\).table_options"):
        _ = table.data


def test_a_budget_needs_room_for_memtables() -> None:
    with pytest.raises(ValueError, match="write_buffer_bytes > 0"):
        TableMemory.of(cache_bytes=_MIB, write_buffer_bytes=0)
    with pytest.raises(ConfigError, match="TABLE_WRITE_BUFFER_MB"):
        Settings(table_write_buffer_mb=0.5).check()


def test_the_metrics_page_reads_the_budgets_use_at_each_scrape(tmp_path: Path) -> None:
    app = _app(tmp_path)
    memory = TableMemory.of(cache_bytes=_MIB, write_buffer_bytes=4 * _MIB)
    metrics = WorkerMetrics()
    metrics.watch_table_memory(memory.usage)
    before = generate_latest(metrics.registry).decode()
    [table] = _tables(app, memory, ("users",))
    table.data._db_for_partition(0)[b"user-1"] = b"x" * 100_000

    after = generate_latest(metrics.registry).decode()
    assert 'stream_rec_table_memory_bytes{kind="memtables"} 0.0' in before
    line = next(line for line in after.splitlines()
                if line.startswith('stream_rec_table_memory_bytes{kind="memtables"}'))
    assert float(line.split()[-1]) >= 100_000
    assert 'stream_rec_table_memory_bytes{kind="block_cache"}' in after
