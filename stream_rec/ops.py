"""Commands against any running broker: ``stream-rec produce`` and ``replay`` (publish
events), ``watch`` (recommendations as they are written, with titles) and
``dlq show|replay`` (the dead-letter topic).

``stream_rec.cli`` registers them; the Kafka reading is in :mod:`stream_rec.broker.tail`.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stream_rec.broker.in_order import send_in_order
from stream_rec.broker.publisher import catalog_records, event_records, publish
from stream_rec.broker.security import client_security_kwargs
from stream_rec.broker.tail import TopicRecord, follow, last_records
from stream_rec.broker.target import external_target
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.events import EventLimits, parse_event
from stream_rec.datasets import load_dataset, load_demo
from stream_rec.errors import InvalidEvent, StreamRecError

__all__ = ["BrokerOpt", "dlq_app", "external_bootstrap", "produce", "progress", "replay", "watch"]

BrokerOpt = Annotated[str | None, typer.Option(
    "--broker", help="tansu | kafka (embedded) | kafka://host:port | tansu://host:port "
    "[env STREAM_REC_BROKER]")]

err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


def external_bootstrap(settings: Settings) -> str:
    """The bootstrap address of a running broker; a usage error for an embedded one."""
    target = external_target(settings.broker)
    if target is None:
        raise typer.BadParameter("this command needs a running broker: pass "
                                 "--broker kafka://host:port (or tansu://host:port)",
                                 param_hint="--broker")
    return target.bootstrap


def progress(console: Console = err) -> Progress:
    """The progress bar of ``replay``, ``produce`` and ``dlq replay`` (on stderr)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


# ----- produce, replay ----------------------------------------------------------------------

def produce(
    path: Annotated[Path, typer.Argument(help="JSON-lines file of events ('-' for stdin)")],
    broker: BrokerOpt = None,
    rate: Annotated[float, typer.Option(help="Events per second (0 = as fast as possible)")]
    = 0.0,
) -> None:
    """Publish a JSON-lines file of events to the events topic, keyed by user_id."""
    settings = Settings.from_env(broker=broker)
    external_bootstrap(settings)  # a usage error before anything is read
    stdin = str(path) == "-"
    try:
        stream = sys.stdin.buffer if stdin else path.open("rb")
    except OSError as exc:
        raise StreamRecError(f"cannot read {path}: {exc.strerror}") from exc
    with stream, progress(err) as bar:
        size = None if stdin else path.stat().st_size
        task = bar.add_task("events", total=size)
        records = _event_lines(stream, lambda done: bar.update(task, completed=done))
        _publish(settings, settings.topics.events, records, rate)


def _event_lines(stream: IO[bytes], on_read: Any) -> Iterator[tuple[bytes | None, bytes]]:
    """(key = user_id, line) per non-empty line, read as sent (never the whole file)."""
    done = 0
    for number, line in enumerate(stream, start=1):
        done += len(line)
        on_read(done)
        line = line.strip()
        if not line:
            continue
        try:
            user = codec.loads(line).get("user_id")
        except (codec.DecodeError, AttributeError):
            user = None  # published as is: the worker dead-letters it with the reason
            err.print(f"[yellow]line {number} is not a JSON object; sent anyway[/]")
        yield (str(user).encode() if user is not None else None, line)


def replay(
    dataset: Annotated[str, typer.Option(help="demo | online-retail | movielens | "
                                         "amazon-minionerec")] = "demo",
    dataset_dir: Annotated[Path | None, typer.Option(
        "--dataset-dir", help="The dataset's folder (not needed for demo)")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events (0 = all)")] = 0,
    rate: Annotated[float, typer.Option(help="Events per second (0 = as fast as possible)")]
    = 0.0,
    catalog: Annotated[bool, typer.Option(help="Publish the catalog first")] = True,
    in_order: Annotated[bool, typer.Option(
        "--in-order", help="Send each event once the worker has answered the previous "
                           "trigger (a worker then applies them in exactly this order; "
                           "--rate is ignored)")] = False,
    recs_out: Annotated[Path | None, typer.Option(
        help="With --in-order: write each trigger's list here (JSON lines, for "
             "`stream-rec verify --worker-recs`)")] = None,
    answer_timeout: Annotated[float, typer.Option(
        help="With --in-order: seconds to wait for one trigger's answer")] = 60.0,
    broker: BrokerOpt = None,
) -> None:
    """Publish a real dataset's catalog and events, in time order."""
    if recs_out is not None and not in_order:
        raise typer.BadParameter("--recs-out needs --in-order (answers are matched to the "
                                 "events sent one at a time)")

    settings = Settings.from_env(broker=broker)
    external_bootstrap(settings)
    if dataset == "demo":
        data = load_demo()
    elif dataset_dir is None:
        raise typer.BadParameter("--dataset-dir is required for this dataset")
    else:
        data = load_dataset(dataset, dataset_dir)
    events = data.events[:limit] if limit else data.events
    with progress(err) as bar:
        if catalog:
            task = bar.add_task("catalog", total=len(data.catalog))
            _publish(settings, settings.topics.catalog, catalog_records(data.catalog), 0.0,
                     on_sent=lambda n: bar.update(task, completed=n))
        task = bar.add_task("events ", total=len(events))
        if not in_order:
            _publish(settings, settings.topics.events, event_records(events), rate,
                     on_sent=lambda n: bar.update(task, completed=n))
            return
        sent = asyncio.run(send_in_order(
            external_bootstrap(settings), settings.topics, events, settings.trigger_types,
            client_kwargs=client_security_kwargs(settings), answer_timeout_s=answer_timeout,
            on_sent=lambda n: bar.update(task, completed=n)))
    err.print(f"sent {sent.events_sent} events in order in {sent.elapsed_s:.1f} s: "
              f"{sent.recs} recommendations, {sent.dead_letters} dead letters "
              f"({', '.join(sorted(sent.models)) or 'no model'})")
    if recs_out is not None:
        recs_out.parent.mkdir(parents=True, exist_ok=True)
        recs_out.write_bytes(b"".join(
            codec.dumps({"trigger_event_id": trigger, "items": items}) + b"\n"
            for trigger, items in sent.answers.items()))
        err.print(f"wrote {len(sent.answers)} lists to {recs_out}")


def _publish(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes]],
             rate: float, on_sent: Any = None) -> None:
    target = external_bootstrap(settings)
    result = asyncio.run(publish(target, topic, records, rate=rate, on_sent=on_sent,
                                 client_kwargs=client_security_kwargs(settings)))
    err.print(f"sent {result.sent} records to {topic} in {result.elapsed_s:.1f} s "
              f"({result.rate:,.0f}/s)")


# ----- watch ---------------------------------------------------------------------------------

def watch(
    broker: BrokerOpt = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's recs")] = None,
    arm: Annotated[str | None, typer.Option("--arm", help="Only this arm's recs")] = None,
    items: Annotated[int, typer.Option(help="Items shown per recommendation")] = 3,
    from_beginning: Annotated[bool, typer.Option(
        "--from-beginning", help="Start at the oldest rec, not at the end")] = False,
    limit: Annotated[int, typer.Option(help="Stop after this many recs (0 = never)")] = 0,
    timeout_s: Annotated[float, typer.Option(
        "--timeout-s", help="Stop after this many seconds (0 = never)")] = 0.0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON line per rec, items with their titles")] = False,
) -> None:
    """Tail the recommendations topic with item titles (read from the catalog topic)."""
    settings = Settings.from_env(broker=broker)
    bootstrap = external_bootstrap(settings)
    shown = asyncio.run(_watch(bootstrap, settings, user=user, arm=arm, items=items,
                               from_beginning=from_beginning, limit=limit,
                               timeout_s=timeout_s, as_json=as_json))
    err.print(f"[dim]{shown} recommendations shown[/]")


async def _watch(bootstrap: str, settings: Settings, *, user: str | None, arm: str | None,
                 items: int, from_beginning: bool, limit: int, timeout_s: float,
                 as_json: bool) -> int:
    topics = settings.topics
    titles: dict[str, str] = {}
    seen: set[str] = set()
    shown = 0
    started = time.monotonic()
    recs_first = [topics.recs] if from_beginning else []
    recs_last = [] if from_beginning else [topics.recs]
    catalog_done = False
    pending: list[TopicRecord] = []  # recs read before the catalog was: shown after it
    async for batch in follow(bootstrap, from_beginning=[topics.catalog, *recs_first],
                              from_end=recs_last, client_kwargs=client_security_kwargs(settings)):
        for record in batch:
            if record.topic == topics.catalog:
                _add_title(titles, record.value)
            else:
                pending.append(record)
        # the catalog is read when a poll brings none of it (end offsets may be wrong on Tansu)
        catalog_done = catalog_done or (
            not any(r.topic == topics.catalog for r in batch)
            and (bool(titles) or time.monotonic() - started > 3.0))
        if not catalog_done:
            continue
        for record in pending:
            rec = _decode(record.value)
            if (rec is None or rec.get("rec_id") in seen or (user and rec.get("user_id") != user)
                    or (arm and rec.get("arm") != arm)):
                continue
            seen.add(str(rec.get("rec_id")))
            _show_rec(rec, titles, items, as_json)
            shown += 1
            if limit and shown >= limit:
                return shown
        pending.clear()
        if timeout_s and time.monotonic() - started > timeout_s:
            return shown
    return shown


def _add_title(titles: dict[str, str], value: bytes | None) -> None:
    item = _decode(value)
    if item is not None and "item_id" in item:
        titles[str(item["item_id"])] = str(item.get("title", item["item_id"]))


def _decode(value: bytes | None) -> dict[str, Any] | None:
    try:
        data = codec.loads(value or b"")
    except codec.DecodeError:
        return None
    return data if isinstance(data, dict) else None


def _show_rec(rec: dict[str, Any], titles: dict[str, str], items: int, as_json: bool) -> None:
    listed = [{**item, "title": titles.get(str(item.get("item_id")), str(item.get("item_id")))}
              for item in rec.get("items", [])]
    if as_json:
        out.print_json(data={**rec, "items": listed}, indent=None)
        return
    flag = f" [yellow]degraded: {escape(str(rec.get('fallback_reason')))}[/]" \
        if rec.get("degraded") else ""
    out.print(f"[bold cyan]user {escape(str(rec.get('user_id')))}[/] "
              f"[dim]{escape(str(rec.get('arm')))}/{escape(str(rec.get('model')))}, "
              f"{float(rec.get('latency_ms', 0.0)):.1f} ms, rec {escape(str(rec.get('rec_id')))}"
              f"[/]{flag}")
    for rank, item in enumerate(listed[:items], start=1):
        out.print(f"   {rank}. {escape(item['title'])}  [green]— "
                  f"{escape(str(item.get('reason', '')))}[/]")


# ----- dlq -----------------------------------------------------------------------------------

dlq_app = typer.Typer(help="The dead-letter topic: browse it, re-publish fixed events",
                      no_args_is_help=True)


@dlq_app.command("show")
def dlq_show(
    broker: BrokerOpt = None,
    last: Annotated[int, typer.Option(help="The newest this many records")] = 20,
    payload: Annotated[bool, typer.Option(
        "--payload", help="Also print the original bytes (may hold personal data)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per record")] = False,
) -> None:
    """Print the newest dead-letter records: where each came from and why it was rejected."""
    settings = Settings.from_env(broker=broker)
    bootstrap = external_bootstrap(settings)
    records = asyncio.run(last_records(bootstrap, settings.topics.dlq, last,
                                       client_kwargs=client_security_kwargs(settings)))
    for record in records:
        letter = _decode(record.value) or {"reason": "undecodable dead-letter record"}
        at = f"{record.partition}@{record.offset}"
        if as_json:
            shown = {"dlq": at, **{k: v for k, v in letter.items()
                                   if payload or k not in ("original_b64", "key_b64")}}
            out.print_json(data=shown, indent=None)
            continue
        source = letter.get("source") or {}
        out.print(f"[bold]{at}[/] [dim]{escape(str(source.get('topic')))}"
                  f"[{source.get('partition')}]@{source.get('offset')}[/]  "
                  f"{escape(str(letter.get('reason')))}")
        if payload:
            raw = base64.b64decode(letter.get("original_b64") or "")
            out.print(f"   [dim]payload:[/] {escape(raw.decode('utf-8', 'replace')[:500])}")
    err.print(f"[dim]{len(records)} dead-letter records from {settings.topics.dlq}[/]")


@dlq_app.command("replay")
def dlq_replay(
    fixed: Annotated[Path | None, typer.Option(
        "--fixed", help="JSON-lines file of corrected events: validated, then published "
        "to the events topic keyed by user_id ('-' for stdin)")] = None,
    offset: Annotated[list[str] | None, typer.Option(
        "--offset", help="PARTITION@OFFSET of a dead-letter record whose original bytes "
        "to re-publish to their source topic (repeatable)")] = None,
    last: Annotated[int, typer.Option(
        help="With --offset: look for the records among the newest this many")] = 1000,
    broker: BrokerOpt = None,
) -> None:
    """Re-publish events: corrected ones from a file, or dead letters' original bytes
    (after fixing the worker that rejected them)."""
    if (fixed is None) == (not offset):
        raise typer.BadParameter("pass either --fixed FILE or --offset P@O (one or more)")
    settings = Settings.from_env(broker=broker)
    bootstrap = external_bootstrap(settings)
    kwargs = client_security_kwargs(settings)
    if fixed is not None:
        records = list(_fixed_events(fixed, EventLimits(max_bytes=settings.max_event_bytes)))
        topic = settings.topics.events
    else:
        records, topic = _originals(bootstrap, settings, offset or [], last, kwargs)
    with progress() as bar:
        task = bar.add_task(f"to {topic}", total=len(records))
        result = asyncio.run(publish(bootstrap, topic, records, client_kwargs=kwargs,
                                     on_sent=lambda n: bar.update(task, completed=n)))
    err.print(f"re-published {result.sent} records to {topic}")


def _fixed_events(path: Path, limits: EventLimits) -> Iterator[tuple[bytes | None, bytes]]:
    """The file's events, all validated first: one bad line publishes nothing."""
    lines = path.read_bytes().splitlines() if str(path) != "-" else \
        typer.get_binary_stream("stdin").read().splitlines()
    now_ms = int(time.time() * 1000)
    checked = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = parse_event(line.strip(), now_ms, limits)
        except InvalidEvent as exc:
            raise StreamRecError(f"{path}, line {number}: {exc}; nothing was sent") from exc
        checked.append((event.user_id.encode(), line.strip()))
    yield from checked


def _originals(bootstrap: str, settings: Settings, wanted: Iterable[str], last: int,
               kwargs: dict[str, Any]) -> tuple[list[tuple[bytes | None, bytes]], str]:
    want = []
    for text in wanted:
        partition, _, off = text.partition("@")
        if not (partition.isdigit() and off.isdigit()):
            raise typer.BadParameter(f"{text!r} is not PARTITION@OFFSET", param_hint="--offset")
        want.append((int(partition), int(off)))
    found = {(r.partition, r.offset): r for r in asyncio.run(
        last_records(bootstrap, settings.topics.dlq, last, client_kwargs=kwargs))}
    missing = [f"{p}@{o}" for p, o in want if (p, o) not in found]
    if missing:
        raise InvalidEvent("--offset", f"names no dead-letter record among the newest {last}",
                           ", ".join(missing))
    records, topics = [], set()
    for key in want:
        letter = _decode(found[key].value) or {}
        key_b64 = letter.get("key_b64")
        records.append((base64.b64decode(key_b64) if key_b64 else None,
                        base64.b64decode(letter.get("original_b64") or "")))
        topics.add(str((letter.get("source") or {}).get("topic", settings.topics.events)))
    if len(topics) != 1:
        raise InvalidEvent("--offset", "names records from several source topics",
                           sorted(topics))
    return records, topics.pop()
