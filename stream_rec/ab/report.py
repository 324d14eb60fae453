"""``stream-rec ab report``: per-arm online metrics read from the ``ab-arms`` table's changelog.

The workers keep one :class:`~stream_rec.ab.online.ArmCounters` per ``"{arm}|{partition}"``
key. The report reads that changelog topic to its end, keeps the latest value per key, sums
the partitions of each arm, and adds Wilson intervals and two-proportion tests
(``stream_rec.ab.stats``). The JSON has the shape of ``ab simulate --json``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import UnknownTopicOrPartitionError

from stream_rec.ab.online import ArmCounters
from stream_rec.ab.stats import two_proportion_test
from stream_rec.ab.store import ARMS_TABLE
from stream_rec.broker.security import client_security_kwargs
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.errors import BrokerError
from stream_rec.evaluation.report import write_json_then_pyplot

__all__ = ["CHART", "arms_changelog_topic", "combine",
           "read_arm_counters", "summarize", "write_report"]

CHART = "ab_online.png"


def arms_changelog_topic(settings: Settings) -> str:
    """faust's name for the ``ab-arms`` table's changelog."""
    return f"{settings.app_id}-{ARMS_TABLE}-changelog"


def combine(records: Sequence[tuple[bytes | None, bytes | None]]) -> dict[str, ArmCounters]:
    """Per-arm totals from changelog records in log order: latest value per key, summed.

    Keys are JSON strings ``"arm|partition"`` (faust serialises str keys as JSON); a
    tombstone (value None) removes its key.
    """
    latest: dict[str, bytes] = {}
    for key, value in records:
        if key is None:
            continue
        name = codec.loads(key)
        if not isinstance(name, str) or "|" not in name:
            continue
        if value is None:
            latest.pop(name, None)
        else:
            latest[name] = value
    totals: dict[str, ArmCounters] = {}
    for name, value in latest.items():
        arm = name.rsplit("|", 1)[0]
        counters = ArmCounters.from_dict(codec.loads(value))
        totals[arm] = totals[arm].merged(counters) if arm in totals else counters
    return totals


async def read_arm_counters(bootstrap: str, settings: Settings, *,
                            timeout_s: float = 30.0) -> dict[str, ArmCounters]:
    """Read the ``ab-arms`` changelog to its end and :func:`combine` it.

    Reads on after the reported end offsets until one fetch comes back empty (embedded
    Tansu under-reports ends after multi-record batches; see docs).
    """


    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=50,
                                request_timeout_ms=int(timeout_s * 1000),
                                **client_security_kwargs(settings))
    await consumer.start()
    topic = arms_changelog_topic(settings)
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        try:
            partitions = await consumer._client._wait_on_metadata(topic)
        except UnknownTopicOrPartitionError:
            partitions = set()
        if not partitions:
            raise BrokerError(f"topic {topic} does not exist: no worker with app id "
                              f"{settings.app_id!r} has counted a recommendation on this "
                              "broker yet (check --broker and STREAM_REC_APP_ID; workers "
                              "keep the tables only when an experiment runs, or with "
                              "STREAM_REC_AB_ATTRIBUTION=on)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(*tps, timeout_ms=300)
            for tp in tps:
                records.extend((m.key, m.value) for m in batch.get(tp, ()))
            positions = [await consumer.position(tp) for tp in tps]
            if not batch and all(pos >= ends[tp] for pos, tp in zip(positions, tps,
                                                                     strict=True)):
                break
        else:
            raise BrokerError(f"could not read {topic} to its end within {timeout_s:.0f} s")
    finally:
        await consumer.stop()
    return combine(records)


def summarize(totals: Mapping[str, ArmCounters], *, arm_order: Sequence[str] = (),
              source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report: per-arm rows, and each arm compared with the first (the control).

    ``arm_order`` lists arms first in that order (e.g. the configured arms), then any other
    arm found, sorted; configured arms with no data get an all-zero row.
    """
    names = list(dict.fromkeys([*arm_order, *sorted(totals)]))
    arms = {name: totals.get(name, ArmCounters()).summary() for name in names}
    comparisons = []
    for other in names[1:]:
        a, b = totals.get(names[0], ArmCounters()), totals.get(other, ArmCounters())
        for metric, x_a, x_b in (("ctr", a.clicks, b.clicks),
                                 ("conversion_rate", a.converted_recs, b.converted_recs)):
            test = two_proportion_test(x_a, a.served, x_b, b.served)
            comparisons.append({"arm_a": names[0], "arm_b": other, "metric": metric,
                                "diff": test.diff, "ci": [test.ci_low, test.ci_high],
                                "z": test.z, "p_value": test.p_value,
                                "significant": test.significant})
    ctr_pairs = [c for c in comparisons if c["metric"] == "ctr"]
    difference = None
    if ctr_pairs:
        first = ctr_pairs[0]
        difference = {"arm_a": first["arm_a"], "arm_b": first["arm_b"],
                      "ctr_diff": first["diff"], "ci": first["ci"], "z": first["z"],
                      "p_value": first["p_value"], "significant": first["significant"]}
    return {"arms": arms, "difference": difference, "comparisons": comparisons,
            "source": dict(source or {})}


def write_report(result: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write ``ab_online.json`` and, with matplotlib (the ``plots`` extra), the chart."""

    paths = [out_dir / "ab_online.json"]
    plt = write_json_then_pyplot(result, paths[0])
    if plt is None:
        return paths

    names = list(result["arms"])
    rows = [result["arms"][n] for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.5))
    for ax, key, label in ((axes[0], "ctr", "CTR (%)"),
                           (axes[1], "conversion_rate", "conversion rate (%)")):
        values = [_pct(r[key]["value"]) for r in rows]
        errors = [[max(0.0, _pct(r[key]["value"]) - _pct(r[key]["ci_low"])) for r in rows],
                  [max(0.0, _pct(r[key]["ci_high"]) - _pct(r[key]["value"])) for r in rows]]
        ax.bar(names, values, yerr=errors, capsize=8, color="#4c72b0")
        ax.set_ylabel(f"{label}, Wilson 95% CI")
    p50 = [_num(r["latency_ms_p50"]) for r in rows]
    p99 = [_num(r["latency_ms_p99"]) for r in rows]
    x = range(len(names))
    axes[2].bar([i - 0.2 for i in x], p50, width=0.4, label="p50", color="#55a868")
    axes[2].bar([i + 0.2 for i in x], p99, width=0.4, label="p99", color="#c44e52")
    axes[2].set_xticks(list(x), names)
    axes[2].set_ylabel("latency (ms)")
    axes[2].legend()
    fig.suptitle("online A/B: " + ", ".join(f"{n} {r['served']:,} served"
                                            for n, r in zip(names, rows, strict=True)),
                 fontsize=10)
    fig.tight_layout()
    chart = out_dir / CHART
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return [*paths, chart]


def _pct(value: Any) -> float:
    return _num(value) * 100.0


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value == value else 0.0
