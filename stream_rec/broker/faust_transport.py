"""faust transports for stream-rec: faust's aiokafka driver with measured fixes.

1. **Every fetched event reaches the agent, in offset order, or is fetched again.**
   faust 0.15.3 loses events around a table recovery or rebalance (bugs C and E in
   docs/reliability.md, traced on Tansu and Kafka 4.4 after a SIGKILL restart):

   a. It re-activates the stream partitions *before* it seeks them to their committed
      offsets, and clears the agents' queues only *after* the seek (``flow_control.resume``).
      Events fetched in that window were handed to the agent's queue, counted as read,
      then cleared: never processed and never fetched again. Here stream partitions stay
      inactive until ``resume_flow``, which faust calls right after that clear.
   b. A batch fetched before a seek kept being delivered after it, so the agent saw
      offsets 30, 31… and then the re-fetched 26…29: out of order (bug C: the profile's
      per-partition watermark then skips 26…29). And the drain loop advanced the read
      offset for deliveries cancelled by a suspended flow, so their re-fetch looked
      "already read". Here each stream partition delivers exactly the next offset it
      expects (set by every seek, advanced by every delivery): lower offsets are skipped
      as handed over, a higher one makes the partition fetch again from the expected one.
   c. Commit bookkeeping was off by one twice: a gap was recorded from ``read + 1`` and a
      commit was allowed when the first acked offset was ``committed + 1``, so a lost
      event at the committed offset was committed over; and any jump in offsets was
      recorded as a gap, i.e. committed. Here only offsets the broker skips again right
      after a seek (transaction markers, compaction) are gaps, and a commit never passes
      an offset that was neither acked nor skipped.
2. **Batches acked only once handled.** faust's ``Stream.take_events`` acks a batch in a
   ``finally``: also when the agent is cancelled half-way through it (shutdown), so the
   commit on the way out can pass events whose outputs were never sent.
   :func:`take_event_batches` acks a batch only when the agent asks for the next one.
3. **Short fetch waits on Tansu.** Tansu 0.6 ignores ``fetch.min.bytes``: a fetch waits
   the full ``fetch.max.wait.ms`` even when records are there, and faust hard-codes that
   wait at 1,500 ms. Consumer latency p50 417 ms at a 1,500 ms wait, 15 ms at 100 ms;
   real Kafka answers in 4 ms with either.

4. **Deliveries that need no wait run inline.** faust races every message's delivery against
   the flow's suspension with ``wait_first``: four tasks and an ``asyncio.wait`` per message,
   which kept a busy worker's stream from filling (at ``max`` the core was 0.67-0.70 busy,
   docs/benchmarks.md). A delivery that finishes without waiting now runs inline; one that
   waits continues in that race.
5. **No consumer thread.** faust runs the aiokafka consumer in a thread with its own loop
   and reaches it through method queues: every fetch crossed threads twice, with a loop
   wake-up and a GIL handover each way (~11 futex calls per message at 1,000/s). The
   consumer now runs on the worker's own loop and calls into it are plain awaits:
   at 1,000/s on Kafka 0.80-0.83 -> 0.755-0.76 ms of CPU per rec and p99 39-41 -> 34-35
   ms (docs/benchmarks.md). Its heartbeats share the loop, so nothing on the loop may
   block for the session timeout (6 s; model and index builds run in threads; the
   worker measures how long its loop is blocked: stream_rec/serving/loop_watch.py).

:func:`register` installs both as URL schemes: ``srkafka://`` and ``tansu://``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from functools import partial
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.utils.functional import consecutive_numbers
from intervaltree import IntervalTree  # type: ignore[import-untyped]
from mode import Service
from mode.utils.futures import maybe_async

from stream_rec.broker.security import ssl_context
from stream_rec.config import Settings

__all__ = ["KAFKA_SCHEME", "TANSU_FETCH_MAX_WAIT_MS", "TANSU_SCHEME", "faust_credentials",
           "make_current", "register", "take_committable", "take_event_batches"]

KAFKA_SCHEME = "srkafka"
TANSU_SCHEME = "tansu"
TANSU_FETCH_MAX_WAIT_MS = 20


class Consumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer that hands each stream partition's events over in order.

    Per stream partition it knows the next offset to deliver (set by every seek, advanced
    by every delivery) and delivers exactly that offset: lower ones were handed over
    already, a higher one means events went missing on the way (a batch fetched around a
    seek, a delivery cancelled by a rebalance), and the partition is fetched again from
    the expected offset. If the broker still answers with a higher offset right after that
    seek, it skipped those offsets (transaction markers, compaction): they are recorded
    as a gap, which counts as done for commits.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # stream partitions faust has resumed but that stay inactive until resume_flow
        self._stream_pending: set[TP] = set()
        self._stream_released: set[TP] = set()
        # the next offset each stream partition delivers (absent: not known yet)
        self._expected: dict[TP, int] = {}
        # seeks are numbered; a batch remembers the number when its fetch started
        self._seek_seq = 0
        self._batch_seq = 0

    # -- activation: stream partitions only after faust cleared the agents' queues --

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        streams = {tp for tp in tps if not self._is_changelog_tp(tp)}
        self._stream_pending |= streams
        if tps - streams:
            super().resume_partitions(tps - streams)

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        self._stream_pending -= tps
        self._stream_released -= tps
        super().pause_partitions(tps)

    def resume_flow(self) -> None:
        super().resume_flow()
        if self._stream_pending:
            released, self._stream_pending = self._stream_pending, set()
            self._stream_released |= released
            super().resume_partitions(released)

    def _set_active_tps(self, tps: set[TP]) -> set[TP]:
        active = super()._set_active_tps(tps)
        active.difference_update({tp for tp in active if tp not in self._stream_released
                                  and not self._is_changelog_tp(tp)})
        return active

    # -- seeks set where each partition continues --

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._seek_seq += 1
        self._expected[partition] = offset

    async def perform_seek(self) -> None:
        committed = await self.seek_to_committed()
        self._seek_seq += 1
        self._read_offset.update({tp: offset if offset is not None and offset >= 0 else None
                                  for tp, offset in committed.items()})
        self._committed_offset.update({tp: offset if offset else None
                                       for tp, offset in committed.items()
                                       if offset is not None})
        for tp, offset in committed.items():
            if offset is not None and offset >= 0:
                self._expected[tp] = offset
            else:
                self._expected.pop(tp, None)
        await self._seek_uncommitted_to_start(committed)

    async def _seek_uncommitted_to_start(self, committed: Mapping[TP, int | None]) -> None:
        """Stream partitions with no commit start at the log's start (faust would leave
        them wherever fetches that were dropped before the seek had moved them)."""
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return
        uncommitted = [tp for tp in self.assignment()
                       if self.app.topics.acks_enabled_for(tp.topic)
                       and (committed.get(tp) or -1) < 0]
        if not uncommitted:
            return
        for tp, start in (await self.earliest_offsets(*uncommitted)).items():
            await self.seek(tp, start)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        # A copy: faust passes its live set of active partitions, which a rebalance or the
        # end of a recovery can empty while the fetch waits in the consumer thread, and an
        # empty set makes aiokafka return records of *every* partition (then dropped, and
        # their positions moved past them).
        active = set(active_partitions) if active_partitions is not None else None
        if active is not None and not active:
            await asyncio.sleep(min(timeout, 0.1))
            return {}
        seq = self._seek_seq
        records = await super()._getmany(active, timeout)
        self._batch_seq = seq
        return records

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _InLoopConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._expected.pop(tp, None)
            self._stream_pending.discard(tp)
            self._stream_released.discard(tp)
        await super().on_partitions_revoked(revoked)

    # -- commits: never past an offset that was neither processed nor skipped by the broker

    def _new_offset(self, tp: TP) -> int | None:
        batch = take_committable(self._acked[tp], self._gap[tp], self._committed_offset[tp])
        if not batch:
            return None
        self._acked_index[tp].difference_update(batch)
        return batch[-1] + 1

    def _record_gap(self, tp: TP, first: int, last: int) -> None:
        """Offsets the broker skipped (compaction, transaction markers) count as done."""
        gaps = self._gap[tp]
        gaps.addi(first, last + 1)
        gaps.merge_overlaps()

    async def _refetch(self, tp: TP, offset: int, fetched: int) -> int | None:
        """Seek ``tp`` back to ``offset``; the seek number after it, None if not assigned."""
        self.log.warning("%s: expected offset %d, fetched %d: fetching again from %d",
                         tp, offset, fetched, offset)
        try:
            await self.seek(tp, offset)
        except Exception as exc:  # revoked meanwhile: faust seeks it when it comes back
            self.log.info("%s: seek back to %d failed (%r)", tp, offset, exc)
            return None
        return self._seek_seq

    async def _deliver(self, delivery: Awaitable[Any]) -> bool:
        """Run ``delivery`` (faust's callback for one message); whether it completed
        while the flow ran and the consumer was up.

        faust races each delivery against the flow's suspension (``wait_first``: four tasks
        and a wait per message). Most deliveries finish without waiting (the stream's
        queue has room): those run inline, at the same point of the loop. One that waits
        for room continues in that race as before, and so does every delivery while the
        flow is suspended."""
        race = delivery
        if isinstance(delivery, Coroutine) and not self.suspend_flow.is_set():
            try:
                waiting_on = delivery.send(None)
            except StopIteration:
                service = cast(Service, self)
                return not (service._stopped.is_set() or service._crashed.is_set())
            race = _Started(delivery, waiting_on)
        result = await self.wait_first(race, self.suspend_flow.wait())
        return race in result.done

    async def _drain_messages(self, fetcher: Any) -> None:
        # tp -> (the offset we sought back to after a hole, the seek's number)
        refetching: dict[TP, tuple[int, int]] = {}
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        set_read_offset = self._read_offset.__setitem__
        expected = self._expected
        suspended = self.suspend_flow.is_set
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > 100:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        sequenced = acks_enabled_for(message.topic)
                        want = expected.get(tp) if sequenced else None
                        if want is not None and offset != want:
                            if offset < want:
                                continue  # handed over already
                            pending = refetching.get(tp)
                            if pending is not None and pending[0] == want:
                                if self._batch_seq < pending[1]:
                                    continue  # fetched before our seek back: comes again
                                self._record_gap(tp, want, offset - 1)  # broker skips them
                            elif suspended():
                                continue  # faust seeks every partition when flow resumes
                            else:
                                seq = await self._refetch(tp, want, offset)
                                if seq is not None:
                                    refetching[tp] = (want, seq)
                                continue
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if await self._deliver(callback(message)):
                            set_read_offset(tp, offset)
                            if sequenced and expected.get(tp) == want:
                                expected[tp] = offset + 1
                                refetching.pop(tp, None)
                        # else: cancelled by a suspended flow; `expected` stays at this offset
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class _Started(Awaitable[Any]):
    """A coroutine that already ran to its first wait (yielding ``waiting_on``), as an
    awaitable that runs it to its end: awaited by a task, it hands that future over and
    relays what the task sends or throws in (a cancellation) to the coroutine."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation: the coroutine decides
                resume = partial(coro.throw, exc)
            else:
                resume = partial(coro.send, sent)
            try:
                waiting_on = resume()
            except StopIteration as done:
                return done.value


def take_committable(acked: list[int], gaps: IntervalTree, committed: int | None) -> list[int]:
    """Remove and return the run of done offsets that starts at the commit point.

    ``acked`` are processed offsets, ``gaps`` offsets the broker skipped; both are consumed
    (mutated) as faust's own bookkeeping expects. ``committed`` is the next offset to
    process (None or -1 when nothing was committed: the run then starts at the first done
    offset). Commit ``run[-1] + 1``; an empty run means nothing can be committed yet.

    >>> take_committable([5, 6, 8], IntervalTree(), 5)
    [5, 6]
    >>> take_committable([6, 7], IntervalTree(), 5)   # 5 is still being processed
    []
    """
    if not acked:
        return []
    if gaps:
        top = max(acked)
        for interval in sorted(gaps.overlap(0, top + 1), key=lambda i: i.begin):
            acked.extend(range(interval.begin, interval.end))
        gaps.chop(0, top + 1)
    acked.sort()
    if committed is not None and committed >= 0 and acked[0] > committed:
        return []
    run = [int(offset) for offset in next(consecutive_numbers(acked))]
    acked[: len(run)] = []
    return run


async def take_event_batches(stream: Any, max_: int,
                             within_s: float) -> AsyncIterator[Sequence[Any]]:
    """faust's ``Stream.take_events`` (a batch once ``max_`` events are buffered or
    ``within_s`` after the first one arrived), except that a batch is acked only when the
    agent asks for the next one, and an idle stream is not polled. A batch the agent did not
    finish (cancelled at shutdown or by a crash) stays unacked, so it is neither committed
    nor lost, and comes again after a restart.

    The events' order is the stream's (per partition: offset order). faust's current event
    is not set in the agent's task: call :func:`make_current` before writing a table.
    """
    buffer: list[Any] = []
    arrived = asyncio.Event()  # the buffer is not empty
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    saved_acks: bool = stream.enable_acks

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            buffer.append(event)
            arrived.set()
            if len(buffer) >= max_:
                full.set()
                consumed.clear()
                await stream.wait(consumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # acked below, batch by batch
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            # no polling while idle: wait for a first event, then up to within_s for more
            await stream.wait_for_stopped(arrived)
            if not full.is_set():
                await stream.wait_for_stopped(full, timeout=within_s)
            if not buffer:
                continue
            consuming = asyncio.get_running_loop().create_future()
            batch = list(buffer)
            buffer.clear()
            arrived.clear()
            yield batch  # a GeneratorExit here (agent cancelled) skips the acks below
            for event in batch:
                await stream.ack(event)
            if not consuming.done():
                consuming.set_result(None)
            full.clear()
            consumed.set()
    finally:
        if consuming is not None and not consuming.done():
            consuming.set_result(None)
        stream.enable_acks = saved_acks
        stream._processors.remove(add_to_buffer)


def make_current(event: Any) -> None:
    """Make ``event`` faust's current event in this task: a table write then goes to the
    changelog partition (and the store) of that event's partition."""
    _current_event.set(weakref.ref(event))


class _InLoopConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer "thread", run as a service on the worker's own loop.

    faust runs the aiokafka consumer in a thread with a loop of its own and reaches it
    through method queues: each fetch crosses threads twice (a loop wake-up and a GIL
    handover each way). Here the thread loop *is* the worker's loop: the service starts
    as a task on it and calls into the consumer are plain awaits.
    """

    def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop,
                 **kwargs: Any) -> None:
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        assert not self._thread_started.is_set()
        self._thread_started.set()
        running = self._thread_running = self.parent_loop.create_future()
        self._serving = self.parent_loop.create_task(self._serve())
        try:
            await running  # set once started (or to the error it crashed with)
        finally:
            self._thread_running = None

    async def stop(self) -> None:
        await super().stop()  # _serve then stops the consumer and returns
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)

    async def call_thread(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    async def _gather_remaining_tasks(self) -> None:
        """Nothing to sweep: the other tasks on this loop are the worker's, not ours."""


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with the drain-loop fix."""

    Consumer = Consumer


class _TansuConsumerThread(_InLoopConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = TANSU_FETCH_MAX_WAIT_MS  # read when the fetcher starts
        return consumer


class TansuConsumer(Consumer):
    """The fixed consumer with Tansu's short fetch wait."""

    def _new_consumer_thread(self) -> _TansuConsumerThread:
        return _TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TansuTransport(faust_aiokafka.Transport):
    """The fixed transport with :data:`TANSU_FETCH_MAX_WAIT_MS`."""

    Consumer = TansuConsumer


def register() -> None:
    """Make ``srkafka://`` and ``tansu://`` URLs resolve to these transports (idempotent)."""
    drivers.TRANSPORTS.aliases[KAFKA_SCHEME] = f"{__name__}:Transport"
    drivers.TRANSPORTS.aliases[TANSU_SCHEME] = f"{__name__}:TansuTransport"


def faust_credentials(settings: Settings) -> Any:
    """The ``broker_credentials`` of a faust app for the same settings (None for PLAINTEXT)."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(username=settings.sasl_username,
                                 password=settings.sasl_password,
                                 mechanism=settings.sasl_mechanism,
                                 ssl_context=context)
