from stream_rec.core import codec
from stream_rec.core.catalog import Catalog
from stream_rec.core.item_stats import ItemDelta, ItemStats
from stream_rec.serving.replicated import ReplicatedState


def _state(own_key: bytes | None = b"me") -> ReplicatedState:
    return ReplicatedState(bootstrap="unused:9092", catalog_topic="catalog",
                           deltas_topic="deltas", catalog=Catalog(), stats=ItemStats(),
                           own_deltas_key=own_key)


def _deltas(*items: str) -> bytes:
    return codec.dumps([ItemDelta(item, "view", 1_000, (), False, False).to_list()
                        for item in items])


def test_other_replicas_deltas_are_folded_and_this_processs_own_are_skipped() -> None:
    state = _state()

    state.fold("deltas", _deltas("a", "b"), b"another-worker")
    state.fold("deltas", _deltas("c"), b"me")
    state.fold("deltas", _deltas("d"), None)  # a record of an older version: no key

    assert sorted(state.stats.counts) == ["a", "b", "d"]
    assert state.own_delta_records == 1


def test_a_restarted_worker_folds_what_its_previous_run_published() -> None:
    before = _state(own_key=b"run-1")
    before.fold("deltas", _deltas("a"), b"run-1")
    after = _state(own_key=b"run-2")  # a new process: a new key

    after.fold("deltas", _deltas("a"), b"run-1")

    assert before.stats.counts.get("a", 0) == 0 and after.stats.counts["a"] == 1


def test_a_bad_delta_record_is_counted_and_skipped() -> None:
    state = _state()

    state.fold("deltas", b"[{", b"other")
    state.fold("deltas", _deltas("a"), b"other")

    assert state.bad_records == 1 and state.stats.counts["a"] == 1
