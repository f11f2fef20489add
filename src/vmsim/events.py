"""Typed events of the memory system, opt-in and free when nobody listens.

Emitters test `bus.active` before building an event, so a machine with no
listener pays one attribute read per significant step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass(frozen=True)
class Event:
    """One significant step: `kind` ("fault", "cow", "alloc", "mmap", ...) and its fields."""

    seq: int
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "kind": self.kind, **self.fields}, sort_keys=True)


class EventBus:
    """Fan-out of events to listeners; `active` is False while there are none."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[Event], None]] = []
        self.active = False
        self._seq = 0

    def listen(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        self.listeners.append(fn)
        self.active = True

        def remove() -> None:
            self.listeners.remove(fn)
            self.active = bool(self.listeners)

        return remove

    def emit(self, kind: str, /, **fields: Any) -> None:
        self._seq += 1
        event = Event(self._seq, kind, fields)
        for fn in list(self.listeners):
            fn(event)

    def record(self) -> list[Event]:
        """Start recording into a list (returned) until the bus is discarded."""
        out: list[Event] = []
        self.listen(out.append)
        return out

    def to_jsonl(self, stream: IO[str]) -> Callable[[], None]:
        """Write every event as one JSON line to `stream`; returns the remover."""
        return self.listen(lambda ev: stream.write(ev.to_json() + "\n"))
