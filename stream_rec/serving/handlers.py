"""What the worker does with one message: event → state → recommendation, with no faust.

The faust agents in :mod:`stream_rec.serving.app` hand each message to a handler here and
send what it returns. A handler reads and writes the user's state through a plain mapping
(the worker's changelogged ``users`` table, a dict in tests) and never raises on input:
anything undecodable or failing becomes a dead-letter record.

    EventHandler.handle_batch(messages) → Outputs(recs, rerank_requests, dead_letters)
    EventHandler.handle(message) = handle_batch([message])
    LlmRecHandler.handle(message) → Outputs(recs=[the decided LLM-arm rec], …)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from stream_rec.ab.online import SERVED_FROM_EVENTS, SERVED_FROM_LLM
from stream_rec.core import codec
from stream_rec.core.events import Event, Recommendation, parse_keyed_event, parse_recommendation
from stream_rec.core.profile import UserProfile
from stream_rec.errors import InvalidEvent
from stream_rec.llm.messages import RerankRequest
from stream_rec.serving.arms import llm_request, recommendation
from stream_rec.serving.dlq import dlq_label, dlq_record
from stream_rec.serving.runtime import WorkerRuntime

__all__ = ["DeadLetter", "EventHandler", "LlmRecHandler", "Outputs", "SourceMessage"]

log = logging.getLogger(__name__)


class SourceMessage(Protocol):
    """The parts of a consumed record a handler reads (faust's ``Message`` has them)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> float: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-letter record to send, keyed by the original message's key."""

    key: bytes | None
    value: bytes


@dataclass(slots=True)
class Outputs:
    """What one message makes the worker send, in this order: dead letters, rerank requests
    to the LLM worker, recommendations to the recs topic."""

    recs: list[Recommendation] = field(default_factory=list)
    rerank_requests: list[RerankRequest] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _DeadLettering:
    """Builds dead-letter records and counts them (shared by both handlers)."""

    def __init__(self, runtime: WorkerRuntime, clock_ms: Callable[[], int]) -> None:
        self.runtime = runtime
        self.clock_ms = clock_ms

    def dead_letter(self, message: SourceMessage, field_name: str, rule: str, shown: str,
                    reason: str) -> DeadLetter:
        record = dlq_record(topic=message.topic, partition=message.partition,
                            offset=message.offset, key=message.key, value=message.value,
                            field_name=field_name, rule=rule, shown=shown, reason=reason,
                            now_ms=self.clock_ms())
        log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition,
                    message.offset, reason)
        self.runtime.metrics.dlq.labels(dlq_label(field_name)).inc()
        return DeadLetter(message.key, codec.dumps(record))


@dataclass(slots=True)
class _Touched:
    """A user's profile while a batch folds into it."""

    stored: bytes | None  # the state before the batch
    profile: UserProfile
    changed: bool = False
    indices: list[int] = field(default_factory=list)  # the batch's messages of this user


class EventHandler(_DeadLettering):
    """Events: validate, fold into the user's state, and answer triggers; in batches.

    ``users`` maps user id → the profile as orjson bytes. A redelivered event changes
    nothing (the profile remembers source offsets and event ids) but its user's state is
    written back, so the changelog catches up with a write a crash left on the local disk
    only.
    """

    def __init__(self, runtime: WorkerRuntime, users: MutableMapping[str, bytes],
                 clock_ms: Callable[[], int] = _now_ms,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        super().__init__(runtime, clock_ms)
        self.users = users
        self.cpu_clock = cpu_clock
        #: CPU seconds of this thread per stage: "state" (decode, fold, state reads and
        #: writes), "ranking" (answering triggers); the caller adds "output"
        self.stage_cpu_s: dict[str, float] = {"state": 0.0, "ranking": 0.0}

    async def handle(self, message: SourceMessage) -> Outputs:
        """One message (a batch of one); never raises."""
        return await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[SourceMessage],
                           bind: Callable[[int], None] | None = None) -> Outputs:
        """A batch of messages, in order; never raises: bad input and failures become
        dead letters.

        Each event is folded into its user's profile and answered exactly as if it came
        alone (per-partition order is the batch's order), but each touched user's state is
        written once, at the end of the batch. ``bind(i)`` is called before anything that
        writes a table on behalf of ``messages[i]`` (faust changelogs a table write to the
        partition of the stream's current event: the caller makes ``messages[i]``'s event
        current).
        """
        out = Outputs()
        touched: dict[str, _Touched] = {}
        clock = self.cpu_clock
        ranking_s = 0.0
        started = clock()
        for index, message in enumerate(messages):
            try:
                event = parse_keyed_event(message.key, message.value, self.clock_ms(),
                                          self.runtime.limits)
            except InvalidEvent as exc:
                out.dead_letters.append(self.dead_letter(message, exc.field, exc.rule,
                                                         exc.value, str(exc)))
                continue
            except Exception as exc:  # a decoder bug must cost one message, never the agent
                log.exception("decoding %s[%s]@%s failed", message.topic, message.partition,
                              message.offset)
                out.dead_letters.append(self.dead_letter(
                    message, "<message>", "could not be decoded", type(exc).__name__,
                    repr(exc)[:200]))
                continue
            if bind is not None:
                bind(index)
            try:
                ranking_s += await self._apply_and_recommend(event, message, index, touched,
                                                             out)
            except Exception as exc:  # the agent must survive anything one event triggers
                log.exception("event %s[%s]@%s failed", message.topic, message.partition,
                              message.offset)
                out.dead_letters.append(self.dead_letter(
                    message, "<processing>", "raised an unexpected error", type(exc).__name__,
                    repr(exc)))
        for user_id, state in touched.items():
            value = codec.dumps(state.profile.to_dict()) if state.changed else state.stored
            if value is None:
                continue
            if bind is not None:
                bind(state.indices[-1])
            try:
                self.users[user_id] = value
            except Exception as exc:  # the agent must survive a failing store too
                log.exception("writing the state of %s failed", user_id)
                out.dead_letters.extend(self.dead_letter(
                    messages[i], "<processing>", "raised an unexpected error",
                    type(exc).__name__, repr(exc)) for i in state.indices)
        total = clock() - started
        self.stage_cpu_s["ranking"] += ranking_s
        self.stage_cpu_s["state"] += max(0.0, total - ranking_s)
        return out

    async def _apply_and_recommend(self, event: Event, message: SourceMessage, index: int,
                                   touched: dict[str, _Touched], out: Outputs) -> float:
        """Fold one event into its user's profile (in ``touched``); returns the CPU seconds
        spent answering it (the ranking stage)."""
        runtime, metrics = self.runtime, self.runtime.metrics
        state = touched.get(event.user_id)
        if state is None:
            stored = self.users.get(event.user_id)
            profile = (UserProfile.from_dict(codec.loads(stored)) if stored
                       else UserProfile.new(event.user_id))
            state = touched[event.user_id] = _Touched(stored, profile)
        state.indices.append(index)
        before = state.profile
        obs = runtime.recommender.observe(before, event, partition=message.partition,
                                          offset=message.offset)
        if obs.applied and runtime.learner is not None:
            # the event labels the list this user would have had before it (no model call;
            # its delta is folded later, so the features do not see it)
            runtime.learner.on_event(before, event)
        if obs.applied:
            state.profile = obs.profile
            state.changed = True
            metrics.events.labels(event.type).inc()
            if obs.delta is not None:
                # folded here at once (this worker's next event sees it, as in `stream-rec
                # eval`) and published for the other replicas; this worker skips its own
                # records when they come back (ReplicatedState.own_deltas_key)
                runtime.recommender.stats.learn_one(obs.delta)
                runtime.pending_deltas.append(obs.delta.to_list())
        else:
            metrics.duplicates.inc()
        if runtime.ab is not None and event.type in ("rec_click", "purchase"):
            note = runtime.ab.on_event(event, partition=message.partition,
                                       offset=message.offset)
            metrics.attribution.labels("events", note).inc()
        if event.type not in runtime.settings.trigger_types:
            return 0.0
        started = self.cpu_clock()
        await self._serve(event, obs.profile, message, out)
        return self.cpu_clock() - started

    async def _serve(self, event: Event, profile: UserProfile, message: SourceMessage,
                     out: Outputs) -> None:
        runtime, metrics = self.runtime, self.runtime.metrics
        arm = runtime.router.assign(event.user_id)
        if runtime.arm_kind(arm) == "llm":
            outcome = llm_request(runtime, profile, event, arm, message.timestamp)
            if isinstance(outcome, RerankRequest):
                out.rerank_requests.append(outcome)
                metrics.llm_arm.labels("sent").inc()
                return
            if outcome is None:
                return
            metrics.llm_arm.labels(outcome.fallback_reason or "nothing_to_rerank").inc()
            rec = outcome
        else:
            rec = await recommendation(runtime, profile, event, message.timestamp, arm)
        if runtime.ab is not None:
            note = runtime.ab.on_recommendation(rec, partition=message.partition,
                                                offset=message.offset,
                                                source=SERVED_FROM_EVENTS)
            metrics.attribution.labels("recs", note).inc()
        out.recs.append(rec)


class LlmRecHandler(_DeadLettering):
    """One message of the internal ``llm-recs`` topic: an LLM-arm recommendation decided by
    a task (result, deadline or shutdown), counted here, in a stream, then sent."""

    async def handle(self, message: SourceMessage) -> Outputs:
        """Never raises: an undecodable record becomes a dead letter."""
        out = Outputs()
        try:
            rec = parse_recommendation(message.value or b"")
        except InvalidEvent as exc:
            out.dead_letters.append(self.dead_letter(message, exc.field, exc.rule, exc.value,
                                                     str(exc)))
            return out
        now_ms = self.clock_ms()  # latency counts the hop through llm-recs too
        rec = replace(rec, generated_at_ms=now_ms,
                      latency_ms=rec.latency_ms + max(0, now_ms - rec.generated_at_ms))
        ab = self.runtime.ab
        try:
            if ab is not None:
                note = ab.on_recommendation(rec, partition=message.partition,
                                            offset=message.offset, source=SERVED_FROM_LLM)
                self.runtime.metrics.attribution.labels("llm-recs", note).inc()
        except Exception:  # attribution must never cost the recommendation
            log.exception("attributing %s[%s]@%s failed", message.topic, message.partition,
                          message.offset)
        out.recs.append(rec)  # a redelivery sends it again: consumers deduplicate on rec_id
        return out
