"""The simulated A/B with the real model: the whole catalogue is embedded before the first
event (no peeking at which items the replay will touch), and the model arm is paired with
the fast arm on the same users."""

from __future__ import annotations

from pathlib import Path

from stream_rec.ab.simulate import simulate
from stream_rec.datasets import load_dataset

DATA = Path(__file__).resolve().parents[2] / "data"
EVENTS = 300


def test_simulation_embeds_the_whole_catalogue_and_pairs_the_model_arm(
        model_path: Path) -> None:
    dataset = load_dataset("online-retail", DATA / "online_retail")
    touched = {e.item_id for e in dataset.events[:EVENTS] if e.item_id}
    assert len(touched) < len(dataset.catalog)  # else the test could not tell the two apart

    result = simulate("online-retail", DATA / "online_retail", arms_spec="fast,slm",
                      limit_events=EVENTS, model_path=str(model_path))

    assert f"embedded the whole catalogue ({len(dataset.catalog)} items)" in " ".join(
        result["notes"])
    assert list(result["arms"]) == ["fast", "slm"]
    served = {arm["served"] for arm in result["arms"].values()}
    assert served == {result["asked"]} and result["asked"] > 0
    pair = result["comparisons"][0]
    assert (pair["arm_a"], pair["arm_b"], pair["users"]) == ("fast", "slm", result["users"])
