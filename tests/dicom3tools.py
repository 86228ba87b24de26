"""Run dicom3tools' ``dciodvfy`` on a file and compare its messages with a reviewed baseline.

Reusable by every area's tests::

    from tests.dicom3tools import assert_valid
    assert_valid(path)                  # fails listing every message not in the baseline

How it works
------------
* :func:`run_dciodvfy` runs ``dciodvfy -new FILE`` (bounded by a timeout) and parses its stderr
  into the IOD name it recognised (``RTImage``, ``CTImage``, …) and one :class:`Message` per
  ``Error``/``Warning`` line. ``-new`` prints the full attribute path, e.g.
  ``Error - </ExposureSequence(3002,0030)[1]/KVP(0018,0060)> - Attribute present when …``.
* The reviewed baseline (``tests/build/dciodvfy_baseline.toml``, mirrored in the last table of
  ``docs/CONFORMANCE.md``) lists accepted messages: ``object`` (the IOD name or ``*``),
  ``message`` (the whole line, where ``*`` matches any run of characters and everything else is
  literal — so item indices, values and private block numbers can be wildcarded) and ``reason``.
* The comparison is **message-exact**: any message that matches no entry is unexpected, however
  harmless its severity; an error count is never used.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: The reviewed baseline of the IOD builders (engineer D); other areas may pass their own.
DEFAULT_BASELINE = Path(__file__).resolve().parent / "build" / "dciodvfy_baseline.toml"
DCIODVFY_TIMEOUT_S = 60.0
_SEVERITIES = ("Error", "Warning")


def dciodvfy_path() -> str | None:
    """The ``dciodvfy`` executable, or None when dicom3tools is not installed."""
    return shutil.which("dciodvfy")


@dataclass(frozen=True)
class Message:
    """One dciodvfy message line, e.g. ``Error - </Laterality(0020,0060)> - Missing …``."""

    severity: str
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Report:
    """What dciodvfy said about one file."""

    path: Path
    iod: str | None
    messages: tuple[Message, ...]
    returncode: int


def parse_output(text: str) -> tuple[str | None, tuple[Message, ...]]:
    """Split dciodvfy's output into the recognised IOD name and its messages (order kept)."""
    iod = None
    messages = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        severity = next((s for s in _SEVERITIES if line.startswith(s + " - ")), None)
        if severity is not None:
            messages.append(Message(severity, line))
        elif re.fullmatch(r"[A-Za-z0-9]+", line) and iod is None:
            iod = line
        else:  # anything else dciodvfy prints is kept as a message so it cannot go unnoticed
            messages.append(Message("Other", line))
    return iod, tuple(messages)


def run_dciodvfy(path: str | Path, *, timeout: float = DCIODVFY_TIMEOUT_S) -> Report:
    """Run ``dciodvfy -new`` on *path* and parse the result."""
    exe = dciodvfy_path()
    if exe is None:
        raise RuntimeError("dciodvfy (Debian package dicom3tools) is not installed")
    proc = subprocess.run([exe, "-new", str(path)], capture_output=True, text=True, timeout=timeout, check=False)
    iod, messages = parse_output(proc.stderr + proc.stdout)
    return Report(Path(path), iod, messages, proc.returncode)


@dataclass(frozen=True)
class BaselineEntry:
    """A reviewed, accepted dciodvfy message."""

    object: str
    message: str
    reason: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.message)

    def matches(self, iod: str | None, message: Message) -> bool:
        return self.object in ("*", iod) and self.pattern.fullmatch(message.text) is not None


@lru_cache(maxsize=None)
def _compile(message: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in message.split("*")), re.DOTALL)


def load_baseline(path: str | Path = DEFAULT_BASELINE) -> tuple[BaselineEntry, ...]:
    """Read a baseline TOML file: ``[[entry]]`` tables with ``object``, ``message``, ``reason``."""
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    entries = []
    for i, raw in enumerate(doc.get("entry", [])):
        missing = {"object", "message", "reason"} - set(raw)
        if missing or not all(str(raw[k]).strip() for k in ("object", "message", "reason")):
            raise ValueError(f"{path}: entry {i + 1} needs non-empty object, message and reason")
        entries.append(BaselineEntry(str(raw["object"]), str(raw["message"]), str(raw["reason"])))
    return tuple(entries)


def unexpected(report: Report, baseline: Iterable[BaselineEntry]) -> list[Message]:
    """The messages of *report* that no baseline entry accepts."""
    entries = list(baseline)
    return [m for m in report.messages if not any(e.matches(report.iod, m) for e in entries)]


def used_entries(reports: Sequence[Report], baseline: Iterable[BaselineEntry]) -> set[BaselineEntry]:
    """The baseline entries that accepted at least one message of *reports* (stale-entry check)."""
    return {e for e in baseline for r in reports for m in r.messages if e.matches(r.iod, m)}


def assert_valid(path: str | Path, *, baseline: Sequence[BaselineEntry] | None = None,
                 expected_iod: str | None = None) -> Report:
    """Run dciodvfy on *path*; fail listing every message the baseline does not accept."""
    report = run_dciodvfy(path)
    entries = load_baseline() if baseline is None else baseline
    if expected_iod is not None:
        assert report.iod == expected_iod, f"{path}: dciodvfy recognised {report.iod!r}, expected {expected_iod!r}"
    bad = unexpected(report, entries)
    assert not bad, f"{path} ({report.iod}): dciodvfy messages not in the reviewed baseline:\n" + "\n".join(
        f"  {m}" for m in bad)
    return report
