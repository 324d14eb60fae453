"""The ``stream-rec`` command: each subcommand builds Settings and calls into the package.

Every setting can also come from its ``STREAM_REC_*`` environment variable
(``stream-rec settings`` lists them); flags win over the environment.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from stream_rec import __version__
from stream_rec.ab.report import arms_changelog_topic, read_arm_counters, summarize
from stream_rec.ab.report import write_report as write_online_report
from stream_rec.ab.simulate import simulate, write_report
from stream_rec.bench.command import bench_main
from stream_rec.broker.changelog import read_user_state
from stream_rec.broker.security import client_security_kwargs
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import ENV_VARS, Settings
from stream_rec.core import codec
from stream_rec.core.router import parse_arms
from stream_rec.datasets import load_dataset
from stream_rec.errors import ConfigError, StreamRecError
from stream_rec.evaluation import CostModel, evaluate
from stream_rec.evaluation.report import to_json
from stream_rec.local.brokers import resolve_broker
from stream_rec.local.demo import DemoOptions, run_demo
from stream_rec.local.verify import (
    VerifyOptions,
    compare_lists,
    read_expected,
    read_worker_lists,
    run_verify,
)
from stream_rec.ops import BrokerOpt, dlq_app, produce, replay, watch

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Streaming product recommendations from shop events on Kafka.")
console = Console(stderr=True)
app.command("watch")(watch)
app.command("produce")(produce)
app.command("replay")(replay)
app.add_typer(dlq_app, name="dlq")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stream-rec {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit")]
        = False) -> None:
    """Streaming product recommendations from shop events on Kafka."""


DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", help="Where state, logs and caches go [env STREAM_REC_DATA_DIR]")]


def _settings(**overrides: Any) -> Settings:
    return Settings.from_env(**overrides)


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="How many real events to replay")] = 3000,
    rate: Annotated[float, typer.Option(help="Events per second (0 = as fast as possible)")]
    = 300.0,
    inject_bad: Annotated[int, typer.Option(help="Mix in this many hostile events")] = 0,
    summary_json: Annotated[Path | None, typer.Option(help="Write the summary here")] = None,
    show_every: Annotated[int, typer.Option(help="Print every Nth recommendation")] = 250,
    broker: BrokerOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Start an embedded broker and a worker, replay real shop events, watch recs flow."""

    settings = _settings(broker=broker, data_dir=data_dir)
    options = DemoOptions(events=events, rate=rate, inject_bad=inject_bad,
                          show_every=max(1, show_every))
    summary = run_demo(settings, options, console)
    console.print_json(data=summary)
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_bytes(codec.dumps(summary) + b"\n")


@app.command()
def worker(
    broker: BrokerOpt = None,
    data_dir: DataDirOpt = None,
    role: Annotated[str | None, typer.Option(
        help="slm | llm | embedder [env STREAM_REC_ROLE]")] = None,
    web_port: Annotated[int | None, typer.Option(
        help="HTTP port for /metrics, /healthz, /readyz [env STREAM_REC_WEB_PORT]")] = None,
) -> None:
    """Run one worker (the process ops scale by replicas) until SIGTERM."""
    settings = _settings(broker=broker, data_dir=data_dir, role=role, web_port=web_port)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.NOTSET)
    # lazy: faust reads argv/env at import: only the worker command loads it
    from stream_rec.worker import run_worker

    with ExitStack() as stack:
        target = resolve_broker(settings.broker, stack, Path(settings.data_dir) / "broker")
        run_worker(settings, target)


@app.command()
def state(
    user_id: Annotated[str, typer.Argument(help="The user whose state to print")],
    broker: BrokerOpt = None,
) -> None:
    """Print one user's state, read from the users table's changelog on the broker."""

    settings = _settings(broker=broker)
    with ExitStack() as stack:
        target = _external_target(settings, stack)
        found = asyncio.run(read_user_state(target, settings, user_id))
    if found is None:
        console.print(f"no state for user {user_id!r}")
        raise typer.Exit(1)
    typer.echo(codec.dumps(found).decode())


@app.command()
def topics(broker: BrokerOpt = None) -> None:
    """Create stream-rec's topics on the broker (missing ones only)."""

    settings = _settings(broker=broker)
    with ExitStack() as stack:
        target = _external_target(settings, stack)
        created = asyncio.run(ensure_topics(target, settings, client_security_kwargs(settings)))
    console.print(f"created: {created or 'nothing (all exist)'}")


@app.command("settings")
def show_settings() -> None:
    """List every setting with its environment variable and current value."""
    current = _settings().describe()
    for env, name in ENV_VARS.items():
        typer.echo(f"{env:42} {current[name]}")


@app.command("eval")
def eval_command(
    dataset: Annotated[str, typer.Option(help="movielens | online-retail | amazon-minionerec")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The dataset's folder")],
    out: Annotated[Path, typer.Option(help="Write results.json, results.md and plots here")],
    protocol: Annotated[str | None, typer.Option(
        help="llamarec | minionerec | time-split | sampled-100 | served (every list a "
             "worker sends for the stream) (default: the dataset's)")]
    = None,
    arms: Annotated[str | None, typer.Option(
        help="Comma list of arms (default: all that can run here, plus ablations)")] = None,
    stage: Annotated[str, typer.Option(
        help="test, or valid to tune on the validation stage")] = "test",
    limit_cases: Annotated[int, typer.Option(
        help="Evaluate this many test cases (0 = all), see --case-sample")] = 0,
    case_sample: Annotated[str, typer.Option(
        help="Which cases --limit-cases keeps: spaced (evenly) | hashed (a fixed subset: "
             "smallest hash of user and position)")] = "spaced",
    price_per_vcpu_hour: Annotated[float, typer.Option(
        help="USD per vCPU-hour for the $/million recs estimate")] = 0.04,
    watts_per_core: Annotated[float, typer.Option(
        help="Watts per busy core for the J/rec estimate")] = 10.0,
    max_events: Annotated[int, typer.Option(
        help="served protocol: stream only the dataset's first N events (0 = all)")] = 0,
    recs_out: Annotated[Path | None, typer.Option(
        help="Write every arm's list for every case here (JSON lines; `stream-rec verify` "
             "compares them with a worker's)")] = None,
) -> None:
    """Replay a real dataset through the worker's recommender and report accuracy and cost."""
    # lazy: llama_cpp loads a native library: only eval with model arms needs it
    from stream_rec.evaluation.model_arm import model_hooks_factory

    names = [a.strip() for a in arms.split(",") if a.strip()] if arms else None
    if max_events and protocol != "served":
        raise typer.BadParameter("--max-events slices the stream of the served protocol: "
                                 "add --protocol served")
    hooks = model_hooks_factory(names)
    results = evaluate(dataset, data_dir, protocol, names, out_dir=out,
                       limit_cases=limit_cases, case_sample=case_sample, stage=stage,
                       protocol_options={"max_events": max_events} if max_events else None,
                       recs_out=recs_out, model_hooks=hooks,
                       cost=CostModel(price_per_vcpu_hour, watts_per_core),
                       command=" ".join(["stream-rec", *sys.argv[1:]]))
    headline = results["headline"]
    for name, arm in results["arms"].items():
        console.print(f"{name:24} {headline} {arm['metrics'][headline]:.4f}  "
                      f"p50 {arm['latency_ms_p50']:.3f} ms")
    console.print(f"wrote {out / 'results.json'} and {out / 'results.md'}")


@app.command()
def verify(
    dataset: Annotated[str, typer.Option(help="movielens | online-retail | amazon-minionerec")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The dataset's folder")],
    max_events: Annotated[int, typer.Option(
        help="The slice: the dataset's first N events (0 = all)")] = 2000,
    eval_recs: Annotated[Path | None, typer.Option(
        help="Lists written by `stream-rec eval --protocol served --max-events N "
             "--recs-out FILE` (default: run that eval here first)")] = None,
    arm: Annotated[str, typer.Option(help="The arm the worker serves (default settings: slm)")]
    = "slm",
    worker_recs: Annotated[Path | None, typer.Option(
        help="Compare only: a worker's lists from `stream-rec replay --in-order --recs-out` "
             "(no broker or worker started)")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Write verify.json, the worker's lists (worker-recs.jsonl) and, when eval runs "
             "here, its lists (eval-recs.jsonl) to this folder")] = None,
    broker: BrokerOpt = None,
    state_dir: Annotated[Path | None, typer.Option(
        help="Where the broker, worker and embedder keep state and logs "
             "[env STREAM_REC_DATA_DIR]")] = None,
) -> None:
    """Replay a dataset slice through a running worker over the broker, as a client, and
    check that every recommendation equals the list `stream-rec eval` reports for it."""
    # lazy: llama_cpp loads a native library: only the in-process eval of a model arm needs it
    from stream_rec.evaluation.model_arm import model_hooks_factory

    settings = _settings(broker=broker, data_dir=state_dir)
    if eval_recs is None:
        eval_recs = (out or Path(settings.data_dir) / "verify-eval") / "eval-recs.jsonl"
        console.print(f"eval of the slice in process: {eval_recs}")
        evaluate(dataset, data_dir, "served", [arm], out_dir=None, ablation=False,
                 protocol_options={"max_events": max_events} if max_events else None,
                 model_hooks=model_hooks_factory([arm]), recs_out=eval_recs, plots=False)
    expected = read_expected(eval_recs, arm)
    if worker_recs is not None:
        report = compare_lists(read_worker_lists(worker_recs), expected)
    else:
        report = run_verify(settings, load_dataset(dataset, data_dir), expected,
                            VerifyOptions(max_events=max_events), console)
    summary = {"dataset": dataset, "max_events": max_events, "arm": arm,
               "eval_recs": str(eval_recs),
               "command": " ".join(["stream-rec", *sys.argv[1:]]), **report.to_dict()}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "verify.json").write_bytes(codec.dumps(summary) + b"\n")
        (out / "worker-recs.jsonl").write_bytes(b"".join(
            codec.dumps({"trigger_event_id": trigger, "items": items}) + b"\n"
            for trigger, items in report.answers.items()))
    console.print_json(data=summary)
    if not report.passed:
        console.print(f"[red]{report.compared - report.identical} of {report.compared} lists "
                      "differ from eval's[/]: see first_mismatches and the worker's log")
        raise typer.Exit(1)
    console.print(f"[green]all {report.compared} lists equal eval's[/]")


@app.command()
def bench(
    broker: Annotated[str, typer.Option(
        help="tansu | kafka | kafka://host:port; a comma list sweeps brokers")] = "tansu",
    workers: Annotated[str, typer.Option(help="Worker processes; a comma list sweeps")] = "1",
    rate: Annotated[str, typer.Option(
        help="Offered events/s, or max (as fast as the workers drain), or ceiling[:START] "
             "(search the highest sustained rate from START, default 500); a comma list "
             "sweeps")]
    = "max",
    users: Annotated[int, typer.Option(help="Distinct users (the real stream, replicated)")]
    = 5_000,
    duration: Annotated[float, typer.Option(help="Measured seconds per run")] = 30.0,
    warmup: Annotated[float, typer.Option(help="Seconds before measuring")] = 5.0,
    backlog: Annotated[int, typer.Option(help="At rate max: events in flight at most")]
    = 2_000,
    out: Annotated[Path | None, typer.Option(
        help="Write results.json, results.md and latency_vs_throughput.png here")] = None,
    summary_json: Annotated[Path | None, typer.Option(
        help="Write the summary here (one run: its summary; a sweep: {runs: [...]})")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Measure throughput, end-to-end latency, lag, RSS and CPU/rec through a real broker."""

    settings = _settings(data_dir=data_dir)
    try:
        rates = [r for r in _csv(rate) if not r.startswith("ceiling")]
        ceiling = [r.partition(":")[2] or "500" for r in _csv(rate) if r.startswith("ceiling")]
        bench_main(settings, brokers=_csv(broker), workers=[int(w) for w in _csv(workers)],
                   rates=[None if r in ("max", "0") else float(r) for r in rates],
                   ceiling_from=float(ceiling[0]) if ceiling else None,
                   users=users, duration_s=duration, warmup_s=warmup, backlog=backlog,
                   out=out, summary_json=summary_json, console=console,
                   command=" ".join(["stream-rec", *sys.argv[1:]]))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _external_target(settings: Settings, stack: ExitStack) -> str:
    if settings.is_embedded:
        raise typer.BadParameter("this command needs a running broker: pass "
                                 "--broker kafka://host:port (or tansu://host:port)")
    return resolve_broker(settings.broker, stack).bootstrap


ab_app = typer.Typer(help="A/B experiments")
app.add_typer(ab_app, name="ab")


@ab_app.command("simulate")
def ab_simulate(
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", help="Directory holding the dataset's files")],
    arms: Annotated[str, typer.Option(
        help="Arms to compare, the first being the control: name[,name...] "
             "(every user is served by every arm)")] = "fast,slm",
    dataset: Annotated[str, typer.Option(
        help="movielens | online-retail | amazon-minionerec")] = "online-retail",
    limit_events: Annotated[int, typer.Option(
        help="Replay only the first N events in time order (0 = all)")] = 0,
    k: Annotated[int, typer.Option("--k", help="Items per recommendation")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, not a table")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Also write ab.json and the CTR chart here")] = None,
) -> None:
    """Simulate an A/B test offline: replay a real dataset, serve every user by every arm,
    and compare the arms on the same users (paired)."""


    result = simulate(dataset, data_dir, arms_spec=arms, limit_events=limit_events, k=k)
    if out is not None:
        for path in write_report(result, out):
            console.print(f"wrote {path}")
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    if as_json:
        print(to_json(result))
        return
    table = Table(title=f"{dataset}: {result['events']:,} events, {result['users']:,} users, "
                        f"{result['asked']:,} recs per arm")
    for column in ("arm", "served", "clicks", "CTR [95% CI]", "conversions",
                   "p50 ms", "p99 ms", "fallbacks"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, arm in result["arms"].items():
        ctr = arm["ctr"]
        table.add_row(name, str(arm["served"]),
                      str(arm["clicks"]), f"{ctr['value']:.2%} [{ctr['ci_low']:.2%}, "
                      f"{ctr['ci_high']:.2%}]", str(arm["conversions"]),
                      f"{arm['latency_ms_p50']:.3f}", f"{arm['latency_ms_p99']:.3f}",
                      str(arm["fallbacks"]))
    Console(width=130).print(table)
    for pair in result["comparisons"]:
        for metric in ("ctr", "conversion_rate"):
            d = pair[metric]
            Console().print(f"{metric} {pair['arm_a']} - {pair['arm_b']} (paired, "
                            f"{pair['users']:,} users): {d['diff']:+.2%} "
                            f"[{d['ci'][0]:+.2%}, {d['ci'][1]:+.2%}], p = {d['p_value']:.3g}"
                            f"{' (significant)' if d['significant'] else ''}")


@ab_app.command("report")
def ab_report(
    broker: BrokerOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, not a table")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Also write ab_online.json and the chart (PNG, needs the plots extra) here")]
    = None,
    timeout_s: Annotated[float, typer.Option(help="Give up reading after this long")] = 30.0,
) -> None:
    """Per-arm online metrics (served, CTR, conversions, latency, fallbacks) from the workers'
    ab-arms table, read from its changelog on the broker."""



    settings = _settings(broker=broker)
    with ExitStack() as stack:
        target = _external_target(settings, stack)
        totals = asyncio.run(read_arm_counters(target, settings, timeout_s=timeout_s))
    result = summarize(totals, arm_order=[a.name for a in parse_arms(settings.arms)],
                       source={"broker": target, "topic": arms_changelog_topic(settings),
                               "app_id": settings.app_id, "arms_spec": settings.arms,
                               "read_at_ms": int(time.time() * 1000)})
    if out is not None:
        for path in write_online_report(result, out):
            console.print(f"wrote {path}")
    if as_json:
        print(to_json(result))
        return
    table = Table(title=f"online A/B ({settings.app_id} on {target})")
    for column in ("arm", "served", "clicks", "CTR [95% CI]", "conversions", "conv. rate [95% CI]",
                   "revenue", "p50 ms", "p99 ms", "fallbacks"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, arm in result["arms"].items():
        ctr, conv = arm["ctr"], arm["conversion_rate"]
        table.add_row(name, f"{arm['served']:,}", f"{arm['clicks']:,}", _rate(ctr),
                      f"{arm['conversions']:,}", _rate(conv), f"{arm['revenue']:,.2f}",
                      _ms(arm["latency_ms_p50"]), _ms(arm["latency_ms_p99"]),
                      f"{arm['fallbacks']:,} ({_pct(arm['fallback_rate'])})")
    Console(width=160).print(table)
    for test in result["comparisons"]:
        Console().print(f"{test['metric']} {test['arm_a']} - {test['arm_b']}: "
                        f"{_signed(test['diff'])} [{_signed(test['ci'][0])}, "
                        f"{_signed(test['ci'][1])}], p = {test['p_value']:.3g}"
                        f"{' (significant)' if test['significant'] else ''}")


def _rate(value: dict[str, float]) -> str:
    return f"{_pct(value['value'])} [{_pct(value['ci_low'])}, {_pct(value['ci_high'])}]"


def _pct(value: float) -> str:
    return "-" if value != value else f"{value:.2%}"


def _signed(value: float) -> str:
    return "-" if value != value else f"{value:+.2%}"


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:,.1f}"


def main() -> None:
    """Console-script entry point: errors print as one line on stderr, not a traceback.

    Exit codes: 2 for usage and configuration errors (typer's own, ConfigError), 1 for
    runtime errors (broker unreachable, bad input, a failed run), 0 otherwise.
    """
    # a client library's own log lines would repeat the one-line error below; the worker
    # command turns them back on
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from exc
    except StreamRecError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from exc
    except KafkaError as exc:
        console.print(f"[red]error:[/] broker: {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from exc
    except OSError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from exc
