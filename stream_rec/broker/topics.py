"""Create stream-rec's topics with their partition counts and cleanup policies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stream_rec.config import Settings

__all__ = ["ensure_topics", "topic_specs"]

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> list[NewTopic]:
    """The topics a deployment needs (faust creates its own changelog topics)."""
    topics = settings.topics
    rf = settings.replication_factor
    n = settings.partitions
    return [
        NewTopic(topics.events, n, rf),
        NewTopic(topics.recs, n, rf),
        NewTopic(topics.dlq, 1, rf, topic_configs={"retention.ms": str(30 * 86_400_000)}),
        NewTopic(topics.catalog, 1, rf, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(topics.item_vectors, 1, rf, topic_configs={"cleanup.policy": "compact"}),
        # key = contributor (a worker): its latest cumulative ranker contribution
        NewTopic(topics.ranker, 1, rf, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(topics.item_deltas, 1, rf,
                 topic_configs={"retention.ms": str(30 * 86_400_000)}),
        NewTopic(topics.rerank_requests, n, rf,
                 topic_configs={"retention.ms": str(86_400_000)}),
        NewTopic(topics.rerank_results, n, rf,
                 topic_configs={"retention.ms": str(86_400_000)}),
        # co-partitioned with events (key = user): the SLM workers' faust group reads it
        NewTopic(topics.llm_recs, n, rf, topic_configs={"retention.ms": str(86_400_000)}),
    ]


async def ensure_topics(bootstrap: str, settings: Settings,
                        client_kwargs: Mapping[str, Any] | None = None,
                        timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left alone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_kwargs or {}))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                await admin.close()
                raise
            await asyncio.sleep(0.5)
    created = []
    try:
        existing = set(await admin.list_topics())
        for spec in topic_specs(settings):
            if spec.name in existing:
                continue
            try:
                await admin.create_topics([spec])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    if created:
        log.info("created topics %s", created)
    return created
