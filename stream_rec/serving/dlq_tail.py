"""The dead-letter topic's latest records, followed by a plain consumer (for the console)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream_rec.core import codec

__all__ = ["DlqTail", "dlq_view"]

log = logging.getLogger(__name__)

_PAYLOAD_CHARS = 400


def dlq_view(record: Mapping[str, Any], *, payload: bool) -> dict[str, Any]:
    """A dead-letter record for display: why and where from; the original bytes (decoded,
    truncated) only when ``payload`` (they may hold personal data)."""
    shown = {k: record.get(k) for k in ("reason", "field", "rule", "source", "received_at_ms",
                                         "dlq_offset")}
    if payload:
        raw = base64.b64decode(record.get("original_b64") or "")
        shown["payload"] = raw.decode("utf-8", "replace")[:_PAYLOAD_CHARS]
        key = record.get("key_b64")
        shown["key"] = base64.b64decode(key).decode("utf-8", "replace") if key else None
    return shown


class DlqTail:
    """Keeps the last ``keep`` records of the dead-letter topic, all partitions."""

    def __init__(self, *, bootstrap: str, topic: str, keep: int = 50,
                 client_kwargs: Mapping[str, Any] | None = None,
                 fetch_max_wait_ms: int = 100) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records: deque[dict[str, Any]] = deque(maxlen=keep)
        self.client_kwargs = dict(client_kwargs or {})
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start following (once); the console calls it on first use."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def latest(self, *, payload: bool) -> list[dict[str, Any]]:
        """Newest first."""
        return [dlq_view(record, payload=payload) for record in reversed(self.records)]

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:  # the broker went away: try again later
                log.warning("following %s failed (%s); retrying in 5 s", self.topic, exc)
                await asyncio.sleep(5.0)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False,
                                    fetch_max_wait_ms=self.fetch_max_wait_ms,
                                    **self.client_kwargs)
        await consumer.start()
        try:
            parts = await consumer._client._wait_on_metadata(self.topic)
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            keep = self.records.maxlen or 50
            for tp in tps:
                consumer.seek(tp, max(0, ends[tp] - keep))
            while True:
                for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                    for message in messages:
                        try:
                            record = codec.loads(message.value or b"")
                        except codec.DecodeError:
                            record = {"reason": "undecodable dead-letter record"}
                        if isinstance(record, dict):
                            record["dlq_offset"] = f"{tp.partition}@{message.offset}"
                            self.records.append(record)
        finally:
            await consumer.stop()
