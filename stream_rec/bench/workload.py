"""The benchmark's offered load, pure: replicated real events and the pacing schedule.

The vendored Online Retail stream (800 customers) is replicated to reach a target number of
users: replica ``r`` of customer ``u`` is user ``shift_user_id(u, r)``, and each replica
starts at a different point of the (time-ordered) story so replicas are not in lockstep.
Every user still sees their own events in time order; once the stream is exhausted it
starts again with timestamps moved past the end, so each user's time only moves forward.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import replace

from stream_rec.core import codec
from stream_rec.core.events import Event

__all__ = ["due_count", "replicate", "shift_user_id", "users_in"]

_NUMERIC_STRIDE_DIGITS = 6  # numeric ids get +r * 10**max(6, digits): never collide


def shift_user_id(user_id: str, replica: int) -> str:
    """The id of ``user_id``'s ``replica``-th copy; replica 0 is the original.

    Numeric ids stay numeric (shifted by a power of ten above every original id), others get
    a suffix:

    >>> shift_user_id("14639", 0), shift_user_id("14639", 2)
    ('14639', '2014639')
    >>> shift_user_id("u7", 3)
    'u7~3'
    """
    if replica == 0:
        return user_id
    if user_id.isdigit():
        stride = 10 ** max(_NUMERIC_STRIDE_DIGITS, len(user_id))
        return str(int(user_id) + replica * stride)
    return f"{user_id}~{replica}"


def users_in(events: Sequence[Event]) -> list[str]:
    """Distinct users in order of first appearance."""
    return list(dict.fromkeys(event.user_id for event in events))


def replicate(events: Sequence[Event], users: int) -> Iterator[tuple[Event, bytes, bytes]]:
    """An endless time-ordered stream of ``(event, key, value)`` over ``users`` users.

    ``events`` must be time-ordered. With ``R = ceil(users / distinct users)`` replicas,
    the stream takes one event from each replica in turn; replica ``r`` starts ``r / R`` of
    the way into ``events`` (wrapping round), only the first ``users`` users (original
    users in order of first appearance, replica by replica) are kept, and event ids get a
    ``.r<replica>c<cycle>`` suffix so every event is distinct.
    """
    if not events or users <= 0:
        return
    originals = users_in(events)
    rank = {user: i for i, user in enumerate(originals)}
    replicas = max(1, math.ceil(users / len(originals)))
    n = len(events)
    span_ms = events[-1].ts_ms - events[0].ts_ms + 86_400_000
    starts = [(r * n) // replicas for r in range(replicas)]
    step = 0
    while True:
        for r in range(replicas):
            position = starts[r] + step
            cycle, index = divmod(position, n)
            source = events[index]
            if r * len(originals) + rank[source.user_id] >= users:
                continue
            user = shift_user_id(source.user_id, r)
            event = replace(source, user_id=user, event_id=f"{source.event_id}.r{r}c{cycle}",
                            ts_ms=source.ts_ms + cycle * span_ms)
            yield event, user.encode(), codec.dumps(event.to_dict())
        step += 1


def due_count(elapsed_s: float, rate: float) -> int:
    """How many events should have been sent ``elapsed_s`` into a run paced at ``rate``/s.

    The schedule is ``t_i = i / rate``: event ``i`` is due once ``elapsed_s >= t_i``.

    >>> due_count(0.0, 1000.0), due_count(0.0105, 1000.0), due_count(2.0, 250.0)
    (1, 11, 501)
    """
    if elapsed_s < 0:
        return 0
    return math.floor(elapsed_s * rate + 1e-9) + 1
