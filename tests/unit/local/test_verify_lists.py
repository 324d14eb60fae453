import gzip
from pathlib import Path

import pytest

from stream_rec.core import codec
from stream_rec.errors import StreamRecError
from stream_rec.local.verify import compare_lists, read_expected, read_worker_lists


def _write_eval(path: Path, rows: list[dict[str, object]]) -> Path:
    data = b"".join(codec.dumps(row) + b"\n" for row in rows)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _row(trigger: str | None, items: list[str], relevant: list[str],
         arm: str = "slm") -> dict[str, object]:
    return {"arm": arm, "user_id": "u1", "trigger_event_id": trigger, "at_index": 1,
            "now_ms": 0, "items": items, "relevant": relevant}


def test_identical_lists_pass_and_their_metrics_are_the_same_on_both_sides(
        tmp_path: Path) -> None:
    expected = read_expected(_write_eval(tmp_path / "eval.jsonl.gz", [
        _row("e1", ["a", "b"], ["b"]), _row("e2", ["c"], ["x"]),
        _row("e1", ["z"], ["b"], arm="fast")]))

    report = compare_lists({"e1": ["a", "b"], "e2": ["c"], "e9": ["q"]}, expected)

    assert report.passed and report.compared == report.identical == 2
    assert report.worker_metrics == report.eval_metrics
    assert report.worker_metrics["hr@10"] == 0.5


def test_a_reordered_or_missing_list_fails_and_is_shown(tmp_path: Path) -> None:
    expected = read_expected(_write_eval(tmp_path / "eval.jsonl", [
        _row("e1", ["a", "b"], ["a"]), _row("e2", ["c"], ["c"])]))

    report = compare_lists({"e1": ["b", "a"]}, expected)

    assert not report.passed and report.identical == 0 and report.missing == 1
    assert [m["trigger_event_id"] for m in report.mismatches] == ["e1", "e2"]
    assert report.worker_metrics["ndcg@10"] < report.eval_metrics["ndcg@10"]


def test_lists_of_a_protocol_without_triggers_are_refused_with_what_to_run(
        tmp_path: Path) -> None:
    path = _write_eval(tmp_path / "eval.jsonl", [_row(None, ["a"], ["a"])])

    with pytest.raises(StreamRecError, match="--protocol served"):
        read_expected(path)


def test_worker_lists_are_read_from_replay_or_verify_output(tmp_path: Path) -> None:
    path = tmp_path / "worker-recs.jsonl"
    path.write_bytes(codec.dumps({"trigger_event_id": "e1", "items": ["a"]}) + b"\n")

    assert read_worker_lists(path) == {"e1": ["a"]}
