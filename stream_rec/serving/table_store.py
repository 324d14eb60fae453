"""faust's RocksDB table store under one memory budget per worker.

faust opens one RocksDB per table partition, and each gets its own block cache and
memtables: a worker's memory then grows with tables times partitions and with the run's
length (the caches fill, the memtables swell between flushes). Here every store of the
worker shares one block cache and one write-buffer manager, so RocksDB's part of the
worker's memory follows two settings, whatever the number of partitions it owns (the
memtable budget is soft: flushes run in the background, so a burst of writes can pass it
for a moment)::

    budget = TableMemory.of(cache_bytes=4 << 20, write_buffer_bytes=8 << 20)
    app.Table("users", store=store_url("users"), options=budget.table_options(), ...)

The store is faust's own (recovery, changelog, standbys and rebalances unchanged); only
the options it opens a database with differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust.stores
import rocksdict
from faust.stores import rocksdb as faust_rocksdb

__all__ = ["BudgetedStore", "TableMemory", "store_url"]

_SCHEME = "stream-rec-rocksdb"
_BUDGET_OPTION = "stream_rec_memory"
# per memtable: a store flushes at this size unless the shared budget makes it flush sooner
_WRITE_BUFFER_BYTES = 4 << 20


@dataclass(frozen=True)
class TableMemory:
    """The block cache and the memtable budget all of a worker's table stores share."""

    block_cache: rocksdict.Cache
    write_buffers: rocksdict.WriteBufferManager

    @classmethod
    def of(cls, *, cache_bytes: int, write_buffer_bytes: int) -> TableMemory:
        """A budget: ``cache_bytes`` of read cache and ``write_buffer_bytes`` of memtables.

        Writers never stall on the memtable budget: past it, the store being written
        flushes its memtable early.
        """
        if cache_bytes < 0 or write_buffer_bytes <= 0:
            raise ValueError(f"a table memory budget needs cache_bytes >= 0 and "
                             f"write_buffer_bytes > 0, got {cache_bytes} and {write_buffer_bytes}")
        return cls(rocksdict.Cache(cache_bytes),
                   rocksdict.WriteBufferManager(write_buffer_bytes, False))

    def table_options(self) -> dict[str, Any]:
        """The ``options=`` of an ``app.Table`` kept under this budget."""
        return {"write_buffer_size": min(_WRITE_BUFFER_BYTES, self.write_buffers.get_buffer_size()),
                "max_write_buffer_number": 2, _BUDGET_OPTION: self}

    def usage(self) -> dict[str, int]:
        """Bytes in use now: the shared block cache's and the memtables'."""
        return {"block_cache": self.block_cache.get_usage(),
                "memtables": self.write_buffers.get_usage()}


def store_url(table: str) -> str:
    """The ``store=`` URL of ``table`` kept by :class:`BudgetedStore`.

    Its databases are where faust's own store keeps them (``TABLEDIR/<table>-<partition>.db``).
    The URL names the table because faust ignores a table's ``store`` without a path.
    """
    return f"{_SCHEME}:{table}"


class _BudgetedOptions(faust_rocksdb.RocksDBOptions):
    """faust's options for one database, with the worker's shared cache and memtable budget."""

    def __init__(self, memory: TableMemory, **kwargs: Any) -> None:
        super().__init__(**kwargs, use_rocksdict=True)
        self.memory = memory

    def as_options(self) -> rocksdict.Options:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(self.memory.write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(self.memory.block_cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class BudgetedStore(faust_rocksdb.Store):
    """faust's RocksDB store, opening its databases under a :class:`TableMemory`."""

    def __init__(self, *args: Any, options: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, options=options, **kwargs)
        rest = dict(self.options or {})  # faust has popped its own keys (read_only, driver)
        memory = rest.pop(_BUDGET_OPTION, None)
        if not isinstance(memory, TableMemory):
            raise TypeError(f"a table kept at {self.url} needs options=TableMemory.of(...)"
                            f".table_options(), got options {sorted(rest)}")
        self.rocksdb_options = _BudgetedOptions(memory, **rest)


faust.stores.STORES[_SCHEME] = f"{__name__}:BudgetedStore"
