"""``openigrt demo``: a whole fraction on the built-in phantom against an embedded archive.

No setup is needed: the demo writes the phantom patient (SIM-1), starts the embedded archive
(ARCHIVE-1) on a free loopback port and imports the phantom into it, registers our node as a
move destination, then runs a :class:`~openigrt.workflow.fraction.Fraction` exactly as against a
real TMS — echo, load by plan UID with IMAGE-level C-MOVEs, validate, acquire with the virtual
imager (a random setup error from the seed), match, review, accept, store over one association —
and finally re-queries the archive (C-FIND by SOP Instance UID) for every stored object and
compares each couch correction with the virtual imager's ground truth.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from openigrt.archive.server import EmbeddedArchive
from openigrt.config import LocalSettings, RemoteAE, Settings
from openigrt.errors import OpenIGRTError
from openigrt.net.client import DicomClient
from openigrt.workflow.fraction import Decision, Fraction, FractionEvent, FractionOptions, match_summary
from openigrt.workflow.matching import MatchOutcome
from openigrt.workflow.phantom import write_patient
from openigrt.workflow.state import MatchRecord, SessionState
from openigrt.workflow.timing import StepClock

#: Largest acceptable difference between a couch correction and the ground truth, per match type
#: (translation in mm, rotation in degrees): the maximum-error targets of the matching benchmark.
ACCURACY_MM = {"2d": 0.8, "2d2d": 0.8, "marker": 0.5, "3d3d": 0.5}
ACCURACY_DEG = {"3d3d": 0.1}
#: On real anatomy (issue 12 targets: 3D/3D rotations within 0.15°).
ACCURACY_DEG_REAL_ANATOMY = {"3d3d": 0.15}
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Check:
    """One thing the demo verifies."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DemoResult:
    workdir: Path
    state: SessionState
    rows: list[dict[str, Any]]
    checks: list[Check]
    #: per-step wall / CPU / peak RSS, in the order the steps ran (``openigrt demo --json``: "timings")
    timings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def free_port(host: str = LOOPBACK) -> int:
    """An unused TCP port on *host* (bound and released; the usual small race applies)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def accuracy_checks(rows: list[dict[str, Any]], *, real_anatomy: bool = False) -> list[Check]:
    """Compare each match's automatic couch correction with the ground truth (virtual imager).

    A reviewer's adjustment is the reviewer's, not the algorithm's: the automatic result is checked.
    Rotations are held to :data:`ACCURACY_DEG` on the phantom, :data:`ACCURACY_DEG_REAL_ANATOMY`
    on real anatomy.
    """
    limits_deg = ACCURACY_DEG_REAL_ANATOMY if real_anatomy else ACCURACY_DEG
    checks = []
    for row in rows:
        couch, truth, m = row.get("automatic_couch") or row["couch"], row["truth"], row["match"]
        if not couch or not truth:
            checks.append(Check(f"{m} accuracy", False, "no couch correction or no ground truth"))
            continue
        skip = set(row.get("couch_axes_not_seen") or ())
        keys = [k for k in ("vrt_mm", "lng_mm", "lat_mm") if k in couch and k not in skip]
        err_mm = max(abs(couch[k] - truth[k]) for k in keys)
        ok = err_mm <= ACCURACY_MM[m]
        detail = f"max translation error {err_mm:.2f} mm (≤ {ACCURACY_MM[m]} mm)"
        if m in limits_deg and "rtn_deg" in couch:
            err_deg = max(abs(couch[k] - truth[k]) for k in ("rtn_deg", "pitch_deg", "roll_deg"))
            ok = ok and err_deg <= limits_deg[m]
            detail += f", max rotation error {err_deg:.2f}° (≤ {limits_deg[m]}°)"
        if skip:
            detail += f"; {', '.join(sorted(skip))} not visible in a single view"
        checks.append(Check(f"{m} accuracy", ok, detail))
    return checks


def run_demo(*, settings: Settings, workdir: Path, match_types: tuple[str, ...], seed: int = 0, small: bool = False,
             patient: str = "synthetic", patient_position: str = "HFS",
             on_event: Callable[[FractionEvent], None] | None = None,
             decide: Callable[[MatchOutcome, MatchRecord], Decision] | None = None,
             cbct_model: str = "fast", stop_after: str | None = None) -> DemoResult:
    """Run the demo in *workdir* (created; re-running resumes the same session).

    *decide* is the fraction's decision callback (default: accept every match as proposed).
    *patient* is ``synthetic`` (the phantom) or a real-anatomy patient of ``openigrt phantom
    --patient`` (``abdomen``, ``liver``), in *patient_position*. *stop_after* stops the fraction
    after that step (``FractionOptions.stop_after``; running again on *workdir* resumes it).
    """
    say = on_event or (lambda e: None)
    clock = StepClock()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    phantom_dir = workdir / "phantom"
    with clock.step("setup: phantom patient"):
        if (phantom_dir / "phantom.json").is_file():
            truth = json.loads((phantom_dir / "phantom.json").read_text())
            say(FractionEvent("phantom", f"phantom patient already in {phantom_dir}"))
        else:
            ph = write_patient(phantom_dir, settings=settings, patient=patient, patient_position=patient_position,
                               seed=seed, small=small, progress=lambda msg: say(FractionEvent("phantom", msg)))
            truth = ph.truth
    plan_uid = truth["uids"]["plan_uid"]
    port = free_port()
    with EmbeddedArchive(workdir / "archive", port=0, bind_address=LOOPBACK) as archive:
        with clock.step("setup: archive import"):
            report = archive.import_paths([phantom_dir / "dicom"])
        say(FractionEvent("archive", f"embedded archive {archive.remote} holds the phantom "
                          f"({getattr(report, 'summary', lambda: '')() or 'imported'})"))
        node = replace(settings, local=LocalSettings(ae_title=settings.local.ae_title, port=port,
                                                     bind_address=LOOPBACK),
                       remote=RemoteAE(archive.remote.ae_title, LOOPBACK, archive.port),
                       cache_dir=workdir / "cache")
        archive.add_destination(RemoteAE(node.local.ae_title, LOOPBACK, port))
        client = DicomClient(node)
        with clock.step("fraction"):
            fraction = Fraction(settings=node, client=client, workdir=workdir / "session", plan_uid=plan_uid,
                                options=FractionOptions(match_types=match_types, seed=seed, cbct_model=cbct_model,
                                                        stop_after=stop_after),
                                on_event=say, decide=decide, clock=clock)
            state = fraction.run()
        with clock.step("verify: C-FIND of every stored object"):
            checks = _arrival_checks(client, state, say)
    rows = match_summary(state)
    checks = [Check("fraction closed", state.closed, "every accepted object stored" if state.closed else "not closed"),
              *checks, *accuracy_checks(rows, real_anatomy=truth.get("site", "phantom") != "phantom")]
    return DemoResult(workdir, state, rows, checks, clock.as_list())


def _arrival_checks(client: DicomClient, state: SessionState, say: Callable[[FractionEvent], None]) -> list[Check]:
    stored = [c for c in state.created if c.stored]
    say(FractionEvent("verify", f"re-querying the archive for {len(stored)} stored object(s)"))
    missing = []
    for c in stored:
        try:
            if not client.find(c.sop_instance_uid).found:
                missing.append(c)
        except OpenIGRTError as exc:
            missing.append(c)
            say(FractionEvent("verify", f"C-FIND {c.sop_instance_uid}: {exc}"))
    kinds: dict[str, int] = {}
    for c in stored:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    if missing:
        return [Check("stored objects found in the archive", False,
                      f"{len(missing)} of {len(stored)} not found, e.g. {missing[0].kind} {missing[0].sop_instance_uid}")]
    return [Check("stored objects found in the archive", bool(stored), f"{len(stored)} found by C-FIND ({detail})")]
