"""Typed events: opt-in, ordered, exportable."""

from __future__ import annotations

import io
import json

from vmsim import Machine


def test_events_record_fault_cow_and_flush(machine: Machine) -> None:
    events = machine.events.record()
    p = machine.spawn()
    a = p.mmap(None, 4096, "rw-", "private|anonymous")
    p.store(a, b"x")
    c = p.fork()
    assert not isinstance(c, int)
    c.store(a, b"y")
    kinds = [e.kind for e in events]
    assert kinds[0] == "mmap" and "fault" in kinds and "cow" in kinds and "tlb_flush" in kinds
    cow = next(e for e in events if e.kind == "cow")
    assert cow.fields["mm"] == c.pid and cow.fields["addr"] == a
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_jsonl_export_and_removal(machine: Machine) -> None:
    stream = io.StringIO()
    remove = machine.events.to_jsonl(stream)
    p = machine.spawn()
    a = p.mmap(None, 4096, "rw-", "private|anonymous")
    p.store(a, b"x")
    remove()
    assert not machine.events.active
    rows = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {"mmap", "fault", "alloc"} <= {r["kind"] for r in rows}
    p.store(a + 1, b"y")
    assert len(stream.getvalue().splitlines()) == len(rows)
