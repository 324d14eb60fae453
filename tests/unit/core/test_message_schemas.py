"""The JSON Schemas in docs/schemas describe what the code really writes and accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from stream_rec.core import codec
from stream_rec.core.events import Event, RecItem, Recommendation, parse_event, parse_recommendation
from stream_rec.datasets import load_demo
from stream_rec.llm.arm import LlmArm
from stream_rec.llm.messages import (
    RerankResult,
    parse_rerank_request,
    parse_rerank_result,
)
from stream_rec.local.hostile import KINDS, bad_events
from stream_rec.serving.dlq import dlq_record

SCHEMAS = Path(__file__).parents[3] / "docs" / "schemas"
DEMO = load_demo()


def _validator(name: str) -> Draft202012Validator:
    schema = codec.loads((SCHEMAS / name).read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_every_demo_event_matches_the_event_schema() -> None:
    validator = _validator("event.schema.json")
    for event in DEMO.events[:2000]:
        validator.validate(event.to_dict())


def test_schema_rejects_what_the_validator_rejects_for_field_level_kinds() -> None:
    validator = _validator("event.schema.json")
    for bad in bad_events(len(KINDS), ts_ms=DEMO.events[0].ts_ms):
        if bad.field.startswith("<"):
            continue  # not JSON, or a key problem: outside a value schema
        if bad.kind == "ts_far_future":
            continue  # relative to the wall clock: the validator's rule, not a schema bound
        assert not validator.is_valid(codec.loads(bad.value)), bad.kind


def test_catalog_items_match_the_catalog_schema() -> None:
    validator = _validator("catalog.schema.json")
    for item in DEMO.catalog:
        validator.validate(item.to_dict())


def test_recommendations_match_the_recommendation_schema() -> None:
    rec = Recommendation("r1", "u1", (RecItem("85123A", 0.9, "trending now"),), "slm",
                         "fast-scorer", "e1", 1_764_000_000_000, 12.5)
    _validator("recommendation.schema.json").validate(rec.to_dict())
    assert parse_recommendation(codec.dumps(rec.to_dict())) == rec


def _llm_request_and_fallback() -> tuple[dict[str, object], dict[str, object]]:
    arm = LlmArm(worker_id="w1", max_pending=1, deadline_ms=1000.0, top_k=2)
    items = [RecItem("85123A", 0.9, "trending now"), RecItem("22423", 0.5, "similar to X")]
    titles = {"85123A": "WHITE HANGING HEART T-LIGHT HOLDER", "22423": 'CAKESTAND "3 TIER"'}
    trigger = Event("e1", "view", "u1", 1_300_000_000_000, item_id="85123A")
    request = arm.prepare(arm="llm", event=trigger, candidates=items, titles=titles,
                          history=["JUMBO BAG RED RETROSPOT"], origin_ms=1_000.0,
                          now_ms=1_010, fast_model="fast-scorer")
    assert not isinstance(request, Recommendation) and request is not None
    fallback = arm.expire(5_000)[0]
    return request.to_dict(), fallback.to_dict()


def test_rerank_requests_match_their_schema_and_parse_back() -> None:
    request, _ = _llm_request_and_fallback()
    _validator("rerank-request.schema.json").validate(request)
    assert parse_rerank_request(codec.dumps(request)).to_dict() == request


def test_rerank_results_match_their_schema_and_parse_back() -> None:
    result = RerankResult("r1", "u1", "w1", "ok", ("22423", "85123A"), "openai:gemma",
                          812.5, 1_764_000_000_000).to_dict()
    _validator("rerank-result.schema.json").validate(result)
    assert parse_rerank_result(codec.dumps(result)).to_dict() == result


def test_llm_arm_fallbacks_match_the_recommendation_schema() -> None:
    _, fallback = _llm_request_and_fallback()
    _validator("recommendation.schema.json").validate(fallback)
    assert fallback["degraded"] and fallback["fallback_reason"] == "deadline"


@pytest.mark.parametrize("key", [b"u1", None])
def test_dead_letters_match_the_dlq_schema(key: bytes | None) -> None:
    record = dlq_record(topic="stream-rec.events", partition=1, offset=7, key=key,
                        value=b"\xff not json", field_name="<message>",
                        rule="must be valid UTF-8 JSON", shown="'bad'", reason="bad",
                        now_ms=1)
    _validator("dlq.schema.json").validate(record)


def test_schema_and_parser_agree_on_a_search_event() -> None:
    raw = {"event_id": "s1", "type": "search", "user_id": "u", "ts_ms": 1_300_000_000_000,
           "query": "lantern"}
    _validator("event.schema.json").validate(raw)
    assert parse_event(codec.dumps(raw), 1_764_000_000_000).query == "lantern"
