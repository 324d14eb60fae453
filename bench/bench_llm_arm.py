"""The LLM arm's row of the founding table: accuracy, latency, RAM and rec/s (prints JSON).

    python bench/bench_llm_arm.py --dataset online-retail \
        --data-dir ../shared/data/online-retail --cases 100 --out docs/ab/llm_arm.json

Uses the evaluation harness's split and cases (``make_split``, the protocol's metrics, the
same evenly spaced subsample as ``stream-rec eval --limit-cases``) and the ``slm`` arm's own
recommender (fast scorer + the model's ``similar`` source, its validated weight), replayed
event by event as ``stream_rec.evaluation.replay`` does. At each case the ``slm`` arm's
top ``--top-n`` go, with the user's last ``--history`` titles, to each LLM backend the LLM
worker can run (the arm's "deep mode"); the reranked top 10 is scored with the same
metrics, so every backend is compared with ``slm`` on exactly the same cases (paired).

Backends: ``local`` (the GGUF via llama-cpp-python: shared-prefix log-likelihood of all
candidates) and ``choice`` (llama_cpp.server on loopback, grammar-constrained picks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from stream_rec.core.catalog import Catalog
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.percentiles import percentile
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender
from stream_rec.datasets import DEFAULT_PROTOCOLS, load_dataset, make_split
from stream_rec.evaluation.arms import make_arms
from stream_rec.evaluation.metrics import RankingAccumulator
from stream_rec.evaluation.model_arm import build_model_hooks
from stream_rec.evaluation.run import machine_info
from stream_rec.llm.messages import RerankCandidate, RerankRequest
from stream_rec.model.files import resolve_model_path


def _rss_mb(pid: int | None = None) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 1e6


def _subsample(cases: Any, limit: int) -> list[Any]:
    if limit <= 0 or limit >= len(cases):
        return list(cases)
    step = len(cases) / limit
    return [cases[int(i * step)] for i in range(limit)]


async def _backends(names: list[str], model: Path, run_dir: Path, picks: int
                    ) -> tuple[dict[str, Any], dict[str, float], list[Any]]:
    from stream_rec.config import Settings
    from stream_rec.llm.backends import LocalBackend
    from stream_rec.llm.http_backend import OpenAIBackend
    from stream_rec.local.llama_server import LlmServer

    backends: dict[str, Any] = {}
    rss: dict[str, float] = {}
    servers: list[Any] = []
    for name in names:
        if name == "local":
            before = _rss_mb()
            backends[name] = LocalBackend.load(Settings(llm_pool_size=1))
            rss[name] = _rss_mb() - before  # grows further while scoring: see the report
        elif name == "choice":
            server = LlmServer.start(model, log_path=run_dir / "llm-server.log")
            servers.append(server)
            backend = OpenAIBackend(server.url, method="choice", picks=picks)
            await backend.start()
            backends[name] = backend
        else:
            raise SystemExit(f"unknown backend {name!r}: use local and/or choice")
    return backends, rss, servers


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = load_dataset(args.dataset, args.data_dir)
    split = make_split(data, args.protocol or DEFAULT_PROTOCOLS[args.dataset])
    cases = _subsample(split.cases, args.cases)
    metric_keys = list(split.metrics)
    [arm] = make_arms(["slm"], ablation=False, model_available=True, dataset=args.dataset,
                      protocol=split.protocol)
    model = resolve_model_path("")
    hooks = build_model_hooks(model, data.catalog)
    catalog = Catalog(data.catalog)
    stats = ItemStats(arm.stats)
    slm = Recommender(catalog, stats, rank_params=arm.rank_params(args.top_n),
                      profile_params=arm.profile, vector_search=hooks.vector_search)
    names = [n.strip() for n in args.backends.split(",") if n.strip()]

    async def main() -> dict[str, Any]:
        backends, rss, servers = await _backends(names, model, args.out.parent if args.out
                                                 else Path("."), args.picks)
        accs = {name: RankingAccumulator(metric_keys) for name in ["slm", *names]}
        per_case: dict[str, list[dict[str, float]]] = {name: [] for name in accs}
        latency: dict[str, list[float]] = {name: [] for name in accs}
        failures = dict.fromkeys(names, 0)
        profiles: dict[str, UserProfile] = {}

        async def ask(case: Any) -> None:
            profile = profiles.get(case.user_id) or UserProfile.new(case.user_id)
            stats.trending(case.now_ms)
            t0 = time.perf_counter()
            top = slm.recommend(profile, now_ms=case.now_ms, exclude=case.masked,
                                allow=case.candidates)
            latency["slm"].append((time.perf_counter() - t0) * 1000)
            ranked = [r.item_id for r in top]
            per_case["slm"].append(accs["slm"].add(ranked[:10], case.relevant))
            history = tuple(catalog.title(item) for item in
                            reversed(profile.recent_item_ids(args.history)))
            request = RerankRequest(
                "bench", case.user_id, "llm", "bench",
                tuple(RerankCandidate(r.item_id, catalog.title(r.item_id), r.score, r.reason)
                      for r in top), history, 10, "bench", case.now_ms,
                int(time.time() * 1000), 600_000.0)
            for name, backend in backends.items():
                t0 = time.perf_counter()
                try:
                    order = await backend.rerank(request, timeout_s=600)
                except Exception as exc:  # a failed rerank is a fallback: the fast order
                    print(f"{name}: rerank failed ({exc}); fast order", file=sys.stderr)
                    failures[name] += 1
                    order = []
                latency[name].append((time.perf_counter() - t0) * 1000)
                seen = set(order)
                final = [*order, *(x for x in ranked if x not in seen)][:10]
                per_case[name].append(accs[name].add(final, case.relevant))
            if len(latency["slm"]) % 10 == 0:
                print(f"{len(latency['slm'])}/{len(cases)} cases", file=sys.stderr)

        next_case = 0
        events = split.train_events
        for i in range(len(events)):
            while next_case < len(cases) and cases[next_case].at_index == i:
                await ask(cases[next_case])
                next_case += 1
            if next_case >= len(cases):
                break
            event = events[i]
            before = profiles.get(event.user_id) or UserProfile.new(event.user_id)
            obs = slm.observe(before, event)
            if obs.delta is not None:
                stats.learn_one(obs.delta)
            if obs.applied:
                profiles[event.user_id] = obs.profile
        while next_case < len(cases):
            await ask(cases[next_case])
            next_case += 1
        for server in servers:
            rss["choice"] = _rss_mb(server.proc.pid)
        for backend in backends.values():
            await backend.close()
        for server in servers:
            server.stop()
        rss["bench_process_peak"] = _rss_mb()
        out: dict[str, Any] = {}
        for name, acc in accs.items():
            row: dict[str, Any] = {"metrics": {k: round(v, 4) for k, v in acc.result().items()}}
            for key in metric_keys:
                values = [c[key] for c in per_case[name]]
                row.setdefault("metrics_se", {})[key] = round(
                    statistics.stdev(values) / math.sqrt(len(values)), 4)
                if name != "slm":
                    diffs = [a[key] - b[key] for a, b in zip(per_case[name], per_case["slm"],
                                                             strict=True)]
                    row.setdefault("diff_vs_slm", {})[key] = {
                        "mean": round(statistics.mean(diffs), 4),
                        "se": round(statistics.stdev(diffs) / math.sqrt(len(diffs)), 4)}
            lat = latency[name]
            row["latency_ms_p50"] = round(percentile(lat, 0.5), 2)
            row["latency_ms_p99"] = round(percentile(lat, 0.99), 2)
            row["recs_per_s_one_instance"] = round(1000 / statistics.mean(lat), 2)
            if name in rss:
                row["rss_mb"] = round(rss[name], 1)
            if name in failures:
                row["failures"] = failures[name]
            out[name] = row
        return {"dataset": args.dataset, "protocol": split.protocol, "cases": len(cases),
                "top_n": args.top_n, "history": args.history, "picks": args.picks,
                "arms": out, "bench_process_rss_peak_mb": round(rss["bench_process_peak"], 1),
                "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
                "command": " ".join(["python", *sys.argv])}

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="online-retail")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--protocol", default=None)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--top-n", type=int, default=20, help="candidates the LLM reranks")
    parser.add_argument("--history", type=int, default=10, help="history titles in the prompt")
    parser.add_argument("--picks", type=int, default=3, help="choice method: positions picked")
    parser.add_argument("--backends", default="local,choice")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
