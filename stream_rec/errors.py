"""Exceptions raised by stream-rec.

    StreamRecError
    ├── ConfigError        a setting has a value that cannot work
    ├── InvalidEvent       an event failed decoding or validation (goes to the DLQ)
    ├── BrokerError        an embedded broker could not start or is unreachable
    ├── ModelError         a model file is missing, corrupt or failed to load
    │   ├── ModelTimeout   a model call missed its deadline (callers fall back)
    │   └── InvalidRerank  a reranker's answer was not a reordering of the offered items
    └── DatasetError       a dataset directory is missing files or has bad rows
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "DatasetError",
    "InvalidEvent",
    "InvalidRerank",
    "ModelError",
    "ModelTimeout",
    "StreamRecError",
]


class StreamRecError(Exception):
    """Base of every error stream-rec raises on purpose."""


class ConfigError(StreamRecError):
    """A setting has a value that cannot work; the message names the key and value."""


class InvalidEvent(StreamRecError):
    """An event failed decoding or validation.

    ``field`` and ``rule`` are machine-readable; ``value`` is a short repr of what was seen.
    """

    def __init__(self, field: str, rule: str, value: object = None) -> None:
        self.field = field
        self.rule = rule
        self.value = _short_repr(value)
        super().__init__(f"{field!r} {rule}, got {self.value}")


class BrokerError(StreamRecError):
    """An embedded broker could not start, or a broker is unreachable."""


class ModelError(StreamRecError):
    """A model file is missing or corrupt, or the model failed to load."""


class ModelTimeout(ModelError):
    """A model call missed its deadline."""


class InvalidRerank(ModelError):
    """A reranker named an item that was not offered, named one twice, or answered nothing
    usable; the caller falls back to the fast order."""


class DatasetError(StreamRecError):
    """A dataset directory is missing files or holds rows that cannot be read."""


def _short_repr(value: object, limit: int = 80) -> str:
    try:
        text = repr(value)
    except RecursionError:  # JSON may nest ~1,000 levels (orjson's limit): deeper than repr
        text = f"<{type(value).__name__} nested too deeply to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
