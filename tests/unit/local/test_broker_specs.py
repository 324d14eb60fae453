"""Broker specs: an external cluster starts nothing; a bad spec is a config error."""

from __future__ import annotations

import pytest

from stream_rec.errors import BrokerError, ConfigError
from stream_rec.local.brokers import start_broker


def test_external_spec_starts_nothing() -> None:
    with start_broker("kafka://kafka-1:9092, kafka-2:9092") as broker:
        assert broker.info.kind == "external"
        assert broker.info.bootstrap == "kafka-1:9092,kafka-2:9092"
        assert broker.pid is None and broker.log_path is None
        with pytest.raises(BrokerError, match="cannot restart an external broker"):
            broker.restart()


@pytest.mark.parametrize("spec", ["redpanda", "kafka://", "kafka://host-without-port"])
def test_bad_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="broker="):
        start_broker(spec)
