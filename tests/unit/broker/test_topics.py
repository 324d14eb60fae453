"""The topics a deployment creates: names under the prefix, partitions, cleanup policies."""

from __future__ import annotations

from stream_rec.broker.topics import topic_specs
from stream_rec.config import Settings


def test_the_ranker_topic_is_created_compacted_with_one_partition() -> None:
    specs = {spec.name: spec for spec in topic_specs(Settings(topic_prefix="shop1"))}
    ranker = specs["shop1.ranker"]
    assert ranker.num_partitions == 1
    assert ranker.topic_configs == {"cleanup.policy": "compact"}
    # compacted like the other whole topics every replica folds from the beginning
    for name in ("shop1.catalog", "shop1.item-vectors"):
        assert specs[name].topic_configs == {"cleanup.policy": "compact"}
