"""Normalising the two sides' output and finding where they first differ.

Both executors already print addresses relative to their own bases.  What
is left to normalise:

* :func:`normalize_host_line`: a host path inside the files directory is
  shown as the guest sees it (``/name``), since vmsim's root is that
  directory;
* :func:`tokenize_file_ids`: the device and inode numbers of the files in
  that directory become ``<dev>`` / ``<ino:NAME>`` (on both sides the same
  files, but a token keeps the comparison about the mapping, not about the
  disk); the column where the name starts is kept as ``@col N`` so the
  kernel's padding is still compared;
* the ``rewrite`` entries of :mod:`vmsim.conform.known_differences`, on both
  sides, counted.

:func:`first_difference` then compares line by line and locates the first
difference in the script (the ``mark`` lines the harness puts before every
step say which step printed what); :func:`format_difference` draws it as a
small diff with the script so far.

:func:`compare_with_host` is the one-call form the comparison tests use:
one script, both sides, the legacy normalisation only.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmsim.conform.files import FileSet, reset_files
from vmsim.conform.host import HostRun, run_host
from vmsim.conform.known_differences import KNOWN_DIFFERENCES, KnownDifference, rewrite_shmem_inode
from vmsim.conform.script import CHILD, Script, words
from vmsim.conform.vmsim_side import VmsimRunner

_HEADER = re.compile(r"^(h?-?[0-9a-f]+-h?-?[0-9a-f]+ \S+ \S+ )([0-9a-f]+:[0-9a-f]+) (\d+)( +)(\S.*)$")
_MARK = re.compile(r"^(?:child: )*mark (\d+)$")


def _split_prefix(line: str) -> tuple[str, str]:
    """("child: " * depth, the rest)."""
    lead = ""
    while line.startswith(CHILD):
        lead += CHILD
        line = line[len(CHILD) :]
    return lead, line


def normalize_host_line(line: str, files_dir: Path) -> str:
    """A host path inside *files_dir* in a maps/smaps header is shown as ``/name``.

    The path is the last field, after the padding, so this changes nothing else.
    """
    prefix = str(files_dir) + "/"
    lead, body = _split_prefix(line)
    if prefix in body and re.match(r"^h?-?[0-9a-f]+-h?-?[0-9a-f]+ ", body):
        idx = body.find(" " + prefix)
        if idx >= 0:
            body = body[: idx + 1] + "/" + body[idx + 1 + len(prefix) :]
    return lead + body


def normalize_shmem_inode(line: str) -> str:
    """Both sides: the inode of a shared-anonymous mapping's hidden file (see known_differences)."""
    return rewrite_shmem_inode(line)


def tokenize_file_ids(line: str, names: Sequence[str]) -> str:
    """Device and inode of a files-directory file in a header line -> tokens, padding kept."""
    lead, body = _split_prefix(line)
    m = _HEADER.match(body)
    if not m:
        return line
    name = m[5]
    base = name.removesuffix(" (deleted)").lstrip("/")
    if not name.startswith("/") or base not in names:
        return line
    col = len(m[1]) + len(m[2]) + 1 + len(m[3]) + len(m[4])
    return f"{lead}{m[1]}<dev> <ino:{base}> @col{col} {name}"


@dataclass
class Normalised:
    """Both sides' lines after normalisation, with how often each known difference rewrote."""

    host: list[str]
    sim: list[str]
    rewrites: Counter[str]


def normalise(host: Sequence[str], sim: Sequence[str], files_dir: Path, names: Sequence[str],
              table: Sequence[KnownDifference] = KNOWN_DIFFERENCES) -> Normalised:
    """Apply every normalisation to both sides (host paths first, then tokens, then rewrites)."""
    rewrites: Counter[str] = Counter()
    kds = [kd for kd in table if kd.rewrite is not None]

    def one(line: str, count: bool) -> str:
        line = tokenize_file_ids(line, names)
        for kd in kds:
            assert kd.rewrite is not None
            new = kd.rewrite(line)
            if new != line and count:
                rewrites[kd.id] += 1
            line = new
        return line

    h = [one(normalize_host_line(ln, files_dir), True) for ln in host]
    s = [one(ln, False) for ln in sim]
    return Normalised(h, s, rewrites)


# ------------------------------------------------------------ differences
@dataclass(frozen=True)
class Difference:
    """Where two outputs first differ: the line index and the script step."""

    index: int  # first differing output line
    step: int  # index into the script lines (-1 before the first mark)
    host_seg: list[str]  # the step's output lines, each side
    sim_seg: list[str]
    start: int = 0  # where the step's lines start (so index - start is the line in the segment)


def _segment(lines: Sequence[str], index: int) -> tuple[int, int, int]:
    """(step, start, end) of the mark-delimited segment holding line *index*."""
    step, start = -1, 0
    for i in range(min(index, len(lines) - 1), -1, -1):
        m = _MARK.match(lines[i])
        if m:
            step, start = int(m[1]), i
            break
    end = len(lines)
    for i in range(max(index, start) + 1, len(lines)):
        if _MARK.match(lines[i]):
            end = i
            break
    return step, start, end


def first_difference(host: Sequence[str], sim: Sequence[str]) -> Difference | None:
    """None if the outputs are equal, else the first difference and its step's lines."""
    n = min(len(host), len(sim))
    index = next((i for i in range(n) if host[i] != sim[i]), n)
    if index == n and len(host) == len(sim):
        return None
    ref = host if index < len(host) else sim
    step, start, _ = _segment(ref, index)
    _, _, h_end = _segment(host, index) if index < len(host) else (0, 0, len(host))
    _, _, s_end = _segment(sim, index) if index < len(sim) else (0, 0, len(sim))
    return Difference(index, step, list(host[start:h_end]), list(sim[start:s_end]), start)


def differing_lines(d: Difference, host: Sequence[str], sim: Sequence[str]) -> tuple[str | None, str | None]:
    """The first differing line of each side (None where that side ended)."""
    return (host[d.index] if d.index < len(host) else None,
            sim[d.index] if d.index < len(sim) else None)


def script_so_far(script: Sequence[str], step: int, limit: int = 60) -> list[str]:
    """The numbered script lines up to *step*, the step marked with ``>``."""
    last = step if step >= 0 else -1
    rows = [f"{'>' if i == step else ' '} {i:4d}  {ln}" for i, ln in enumerate(script[: last + 1])]
    if len(rows) > limit:
        rows = [f"       ... {len(rows) - limit} earlier lines ...", *rows[-limit:]]
    return rows


def format_difference(script: Sequence[str], d: Difference, max_diff: int = 40) -> str:
    """The script so far and a unified diff of the first differing step."""
    out = ["script so far:", *script_so_far(script, d.step)]
    diff = list(difflib.unified_diff(d.host_seg, d.sim_seg, "host", "vmsim", lineterm="", n=3))
    if len(diff) > max_diff:
        diff = [*diff[:max_diff], f"... ({len(diff) - max_diff} more diff lines)"]
    out += diff
    return "\n".join(out)


def step_op(script: Sequence[str], step: int) -> str:
    """The operation line of a step ('' if none)."""
    if 0 <= step < len(script):
        w = words(script[step])
        return " ".join(w)
    return ""


# ------------------------------------------------------- one-call comparison
def compare_with_host(
    build: Callable[[Script, FileSet], object],
    tmp: Path,
    files: dict[str, bytes] | None = None,
    dirs: Sequence[str] = (),
) -> tuple[HostRun, list[str]]:
    """Run one script on the host and on vmsim; return (host run, vmsim lines).

    The script is built once by ``build(script, FileSet)``.  Both runs use the
    same directory ``tmp/files`` (vmsim's root), so device and inode numbers
    of the files agree; before each run the directory is reset to *files* and
    *dirs*, rewritten in place and dropped from the host's page cache, so both
    start from the same contents with a cold cache.  The host lines come back
    normalised by :func:`normalize_host_line` and both sides by
    :func:`normalize_shmem_inode`; nothing else is changed, and vmsim keeps its
    own defaults (signals kill, soft-dirty tracked).
    """
    files = files or {}
    d = tmp / "files"
    d.mkdir(parents=True, exist_ok=True)
    d = d.resolve()
    fs = FileSet(d)
    script = Script()
    build(script, fs)
    reset_files(d, files, dirs)
    host = run_host(script.lines)
    host_lines = [normalize_shmem_inode(normalize_host_line(ln, d)) for ln in host.lines]
    reset_files(d, files, dirs)
    runner = VmsimRunner(root=d, path_map=(str(d), "/"))
    sim = [normalize_shmem_inode(ln) for ln in runner.run(script.lines)]
    return HostRun(base=host.base, lines=host_lines, heap=host.heap), sim
