"""The operation language: tokens, numbers, fork nesting."""

from __future__ import annotations

import pytest

from vmsim.conform.script import (
    Abs,
    Heap,
    Script,
    ScriptError,
    fmt_arg,
    matching_endchild,
    parse_num,
)


def test_heap_and_absolute_tokens() -> None:
    assert fmt_arg(Heap(0)) == "h0"
    assert fmt_arg(Heap(0x3000)) == "h0x3000"
    assert fmt_arg(Heap(-0x1000)) == "h-0x1000"
    assert fmt_arg(Abs(0x1000)) == "=0x1000"


def test_builder_new_ops() -> None:
    s = Script().brk(Heap(0x2000)).brk(None).touch(0, "x").exit().snap()
    assert s.lines == ["brk h0x2000", "brk -", "touch 0 x", "exit", "snap"]
    with pytest.raises(ValueError):
        Script().touch(0, "q")


def test_parse_num() -> None:
    assert parse_num("010") == 10
    assert parse_num("-1") == (1 << 64) - 1
    with pytest.raises(ScriptError):
        parse_num("0x")


def test_matching_endchild_nests() -> None:
    lines = ["fork", "fork", "endchild", "endchild", "exit"]
    assert matching_endchild(lines, 0) == 3
    assert matching_endchild(lines, 1) == 2
    assert matching_endchild(["fork"], 0) == 1
