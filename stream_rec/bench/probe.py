"""The recommendations reader, in its own process: when did each rec arrive?

It runs an aiokafka consumer on the recs topic (no group, from the earliest offset) in a
``spawn``-ed process, so its CPU is not the load generator's, counts distinct recs in a
shared counter (the load generator reads it to bound its backlog) and, when told to stop,
writes ``trigger_event_id arrival_unix_s`` lines to a file.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections.abc import Mapping
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from stream_rec.core import codec

__all__ = ["RecsProbe", "read_arrivals"]


class RecsProbe:
    """Start with :meth:`start`, read :attr:`count` while it runs, :meth:`stop` to collect."""

    def __init__(self, bootstrap: str, topic: str, out_path: Path,
                 client_kwargs: Mapping[str, Any] | None = None, *,
                 fetch_max_wait_ms: int = 100) -> None:
        ctx = mp.get_context("spawn")
        self.out_path = out_path
        self._count: Synchronized[int] = ctx.Value("q", 0, lock=False)
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_main, name="stream-rec-bench-probe", daemon=True,
                                 args=(bootstrap, topic, str(out_path),
                                       {**dict(client_kwargs or {}),
                                        "fetch_max_wait_ms": fetch_max_wait_ms},
                                       self._count, self._ready, self._stop))

    @property
    def count(self) -> int:
        """Distinct recommendations received so far."""
        return int(self._count.value)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def start(self, timeout_s: float = 30.0) -> RecsProbe:
        self._proc.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"recs probe not ready after {timeout_s:.0f} s")
        return self

    def stop(self, timeout_s: float = 30.0) -> dict[str, float]:
        """Stop reading and return ``{trigger_event_id: arrival unix time}``."""
        self._stop.set()
        self._proc.join(timeout_s)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        return read_arrivals(self.out_path) if self.out_path.exists() else {}


def read_arrivals(path: Path) -> dict[str, float]:
    """The probe's output file as ``{trigger_event_id: arrival unix time}``."""
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        event_id, _, at = line.partition(" ")
        if event_id and at:
            out.setdefault(event_id, float(at))
    return out


def _main(bootstrap: str, topic: str, out_path: str, client_kwargs: dict[str, Any],
          count: Synchronized[int], ready: MpEvent, stop: MpEvent) -> None:
    asyncio.run(_read(bootstrap, topic, Path(out_path), client_kwargs, count, ready, stop))


async def _read(bootstrap: str, topic: str, out_path: Path, client_kwargs: dict[str, Any],
                count: Synchronized[int], ready: MpEvent, stop: MpEvent) -> None:

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", **client_kwargs)
    await consumer.start()
    arrivals: dict[str, float] = {}
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        ready.set()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for messages in batches.values():
                for message in messages:
                    event_id = codec.loads(message.value)["trigger_event_id"]
                    if event_id not in arrivals:
                        arrivals[event_id] = now
            count.value = len(arrivals)
    finally:
        await consumer.stop()
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{e} {t:.6f}\n" for e, t in arrivals.items()))
        tmp.replace(out_path)
