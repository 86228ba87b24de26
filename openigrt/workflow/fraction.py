"""A treatment fraction as explicit, resumable steps (SPEC LOAD-1 … 3, MATCH-6/7, IOD-1 … 7, NET-10).

::

    echo → load (plan, structure set, CT, reference images) → validate (each requested match)
         → acquire (virtual imager, image files, or images received by our Storage SCP)
         → match (each type) → review picture → decision (accept / reject / adjust)
         → close fraction: echo, store every accepted, unstored object over ONE association
           (DIMSE) or by STOW-RS (DICOMweb: any openigrt.net.tms.TmsClient)

Every step records its outcome in the session state (:mod:`openigrt.workflow.state`), written
atomically to ``WORKDIR/session.json``; running the fraction again on the same work directory
resumes it: finished steps are skipped, acquisitions are never repeated, and an object that the
TMS acknowledged is never sent again.

Work directory layout::

    session.json          the state
    acquired/kv/ …        acquisitions (virtual imager output with truth.json, or copies of files)
    created/<match>/ …    REG, marker structure set, RT Images with curves of each match
    review/<match>.png    review pictures; review/index.html shows them all

Progress and results are notifications (:class:`FractionEvent`) to an ``on_event`` callback; the
decision on a match is an intervention: a ``decide`` callback returning a :class:`Decision`
(default: accept as proposed).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from openigrt.config import Settings
from openigrt.errors import OpenIGRTError, PreconditionError, RegistrationError, WorkflowError
from openigrt.iod.build import write_file
from openigrt.iod.dataset_io import read_file, read_paths
from openigrt.workflow.load import LoadedPatient, load_patient
from openigrt.workflow.session_cache import CtCache
from openigrt.workflow.timing import StepClock
from openigrt.workflow.matching import (
    MatchOutcome,
    marker_images,
    marker_structure_set,
    registration,
    run_2d,
    require_success,
    run_2d2d,
    run_3d3d,
    run_marker,
)
from openigrt.workflow.state import (
    ACCEPTED,
    PROPOSED,
    REJECTED,
    Acquisition,
    CreatedObject,
    LoadedObjects,
    MatchRecord,
    SessionState,
    SessionStore,
)

LOG = logging.getLogger("openigrt.workflow.fraction")

MATCH_TYPES = ("2d", "2d2d", "marker", "3d3d")
SOURCES = ("virtual", "files", "received")
STEPS = ("load", "validate", "acquire", "match", "close")

#: Acquisition that feeds each match type.
ACQUISITION_OF = {"2d": "kv", "2d2d": "kv", "marker": "kv", "3d3d": "cbct"}

#: SOP classes of created objects.
_REG = "1.2.840.10008.5.1.4.1.1.66.1"


@dataclass(frozen=True)
class FractionEvent:
    """A progress notification: *step*, a human message, and counts when known."""

    step: str
    message: str
    done: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class Decision:
    """The user's decision on a proposed match (MATCH-7).

    ``recorded`` means the decider has already written the decision (and any adjusted objects)
    into the session state itself, as the browser review does (:mod:`openigrt.workflow.review_decide`):
    the fraction then re-reads the state instead of recording anything.
    """

    decision: str = ACCEPTED
    adjustment_mm: tuple[float, float, float] | None = None  # (lat, lng, vrt) table-top mm added
    decided_by: str | None = None
    recorded: bool = False


@dataclass(frozen=True)
class VirtualSetup:
    """Setup errors the virtual imager applies (table-top terms, see ``openigrt acquire --help``)."""

    kv: tuple[float, ...] = (0.0, 0.0, 0.0)
    cbct: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def random(cls, seed: int, *, max_mm: float = 8.0, max_deg: float = 2.0) -> VirtualSetup:
        """Translations uniform in ±max_mm for both; rotations in ±max_deg for the CBCT only."""
        rng = np.random.default_rng(seed)
        kv = tuple(float(round(v, 2)) for v in rng.uniform(-max_mm, max_mm, 3))
        cbct = tuple(float(round(v, 2)) for v in rng.uniform(-max_mm, max_mm, 3)) + tuple(
            float(round(v, 2)) for v in rng.uniform(-max_deg, max_deg, 3))
        return cls(kv, cbct)


@dataclass(frozen=True)
class FractionOptions:
    """What to do in this fraction."""

    match_types: tuple[str, ...] = MATCH_TYPES
    source: str = "virtual"
    acquired_paths: tuple[Path, ...] = ()
    seed: int = 0
    setup: VirtualSetup | None = None  # None: random from the seed
    reference_uids: tuple[str, ...] = ()
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    receive_timeout_s: float = 300.0
    stop_after: str | None = None
    store: bool = True
    cbct_model: str = "fast"

    def __post_init__(self) -> None:
        bad = [m for m in self.match_types if m not in MATCH_TYPES]
        if bad or not self.match_types:
            raise WorkflowError(f"match types must be among {', '.join(MATCH_TYPES)}, got {list(self.match_types)}")
        if self.source not in SOURCES:
            raise WorkflowError(f"acquisition source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source == "files" and not self.acquired_paths:
            raise WorkflowError("file mode needs the acquired image files (--acquired PATH...)")
        if self.stop_after is not None and self.stop_after not in STEPS:
            raise WorkflowError(f"--stop-after must be one of {', '.join(STEPS)}, got {self.stop_after!r}")
        if self.cbct_model not in ("fast", "fdk"):
            raise WorkflowError(f"--cbct-model must be fast or fdk, got {self.cbct_model!r}")


class FractionFailed(WorkflowError):
    """A step failed; the message says which and why. Nothing unsaved is lost (state is on disk)."""


class Stopped(Exception):
    """Raised internally to stop after a step (``stop_after``)."""


@dataclass
class _Live:
    """In-memory results of this run (not persisted: matches are re-run on resume when needed)."""

    loaded: LoadedPatient | None = None
    outcomes: dict[str, MatchOutcome] = field(default_factory=dict)
    ct: CtCache = field(default_factory=CtCache)  # CT series decoded once per run


class Fraction:
    """Runs (or resumes) one fraction in *workdir* against the TMS behind *client*."""

    def __init__(self, *, settings: Settings, client: Any, workdir: Path, plan_uid: str, options: FractionOptions,
                 on_event: Callable[[FractionEvent], None] | None = None,
                 decide: Callable[[MatchOutcome, MatchRecord], Decision] | None = None,
                 clock: StepClock | None = None) -> None:
        self.settings = settings
        self.clock = clock or StepClock()  # per-step wall / CPU / peak RSS (demo --json)
        self.client = client
        self.workdir = Path(workdir)
        self.options = options
        self.store = SessionStore(self.workdir)
        self.on_event = on_event or (lambda e: None)
        self.decide = decide or (lambda outcome, record: Decision())
        self.live = _Live()
        self.evaluations: dict[str, Any] = {}  # match type -> plan Evaluation (set by validate)
        if self.store.exists():
            self.state = self.store.load()
            if self.state.plan_uid != plan_uid:
                raise WorkflowError(f"{self.workdir} holds a session of plan {self.state.plan_uid}, not {plan_uid}")
            self._say("resume", f"resuming the session in {self.workdir}")
        else:
            self.state = self.store.save(SessionState(plan_uid=plan_uid))

    # ------------------------------------------------------------------ plumbing
    def _say(self, step: str, message: str, done: int | None = None, total: int | None = None) -> None:
        LOG.info("%s: %s", step, message)
        self.on_event(FractionEvent(step, message, done, total))

    def _save(self, state: SessionState) -> None:
        self.state = self.store.save(state)

    def _checkpoint(self, step: str) -> None:
        if self.options.stop_after == step:
            self._say(step, f"stopping after {step} as asked; run again on {self.workdir} to resume")
            raise Stopped(step)

    def run(self) -> SessionState:
        """Run every step not yet done; return the final state (raises FractionFailed on failure)."""
        step = self.clock.step
        try:
            with step("load"):
                self.load()
            self._checkpoint("load")
            with step("validate"):
                self.validate()
            self._checkpoint("validate")
            with step("acquire"):
                self.acquire()
            self._checkpoint("acquire")
            with step("match"):
                self.match()
            with step("review and decide"):
                self.review_and_decide()
            self._checkpoint("match")
            if self.options.store:
                with step("close (store)"):
                    self.close()
            self._checkpoint("close")
        except Stopped:
            pass
        return self.state

    # ------------------------------------------------------------------ load (LOAD-1/2/3)
    def load(self) -> LoadedPatient:
        if self.live.loaded is not None:
            return self.live.loaded
        need_ct = any(m in ("marker", "3d3d") for m in self.options.match_types) or self.options.source == "virtual"

        def progress(p: Any) -> None:
            self._say("load", f"{p.step} {p.done}/{p.total}", p.done, p.total)

        try:
            loaded = load_patient(self.client, self.state.plan_uid, study_instance_uid=self.options.study_instance_uid,
                                  series_instance_uid=self.options.series_instance_uid,
                                  reference_uids=self.options.reference_uids, need_ct=need_ct, progress=progress)
        except OpenIGRTError as exc:
            raise FractionFailed(f"load failed: {exc}") from None
        self.live.loaded = loaded
        self._save(replace(self.state, echo_ok=True, loaded=LoadedObjects(
            plan=str(loaded.plan_path), structure_set=str(loaded.structure_set_path or "") or None,
            ct=tuple(str(p) for p in loaded.ct_paths), references=tuple(str(p) for p in loaded.reference_paths))))
        self._say("load", f"plan, structure set, {len(loaded.ct_paths)} CT slices and {len(loaded.reference_paths)} "
                  f"reference image(s) ready ({loaded.retrieved} retrieved, {loaded.from_cache} from the cache)")
        return loaded

    # ------------------------------------------------------------------ validate (PLAN-*)
    def validate(self) -> dict[str, Any]:
        from openigrt.plan.evaluate import collect_inputs, evaluate

        loaded = self.load()
        paths = [loaded.plan_path, *([loaded.structure_set_path] if loaded.structure_set_path else []),
                 *loaded.ct_paths, *loaded.reference_paths]
        files, _ = read_paths(paths)
        inputs = collect_inputs(files, tolerances=self.settings.tolerances, creator_prefix=self.settings.private_creator)
        evaluations = {}
        problems = []
        for m in self.options.match_types:
            ev = evaluate(inputs, m, tolerances=self.settings.tolerances)
            evaluations[m] = ev
            if not ev.possible:
                why = "; ".join(f"{f.id} {' '.join(f.tags)} {f.message}".strip() for f in ev.failures())
                problems.append(f"{m}: {why}")
        self._save(replace(self.state, validated={m: e.possible for m, e in evaluations.items()}))
        if problems:
            raise FractionFailed("the plan does not allow the requested match: " + " | ".join(problems))
        self.evaluations = evaluations
        self._say("validate", "plan checks passed for " + ", ".join(self.options.match_types))
        return evaluations

    def _beams_for(self, kind: str) -> tuple[int, ...]:
        used: list[int] = []
        for m in self.options.match_types:
            if ACQUISITION_OF[m] == kind:
                used += [b for b in self.evaluations[m].used_beams if b not in used]
        return tuple(used)

    # ------------------------------------------------------------------ acquire (SIM-3 / files / received)
    def acquire(self) -> tuple[Acquisition, ...]:
        kinds = sorted({ACQUISITION_OF[m] for m in self.options.match_types})
        for kind in kinds:
            if any(a.acquisition_id == kind for a in self.state.acquisitions):
                self._say("acquire", f"{kind} acquisition already in the session")
                continue
            with self.clock.step(f"acquire {kind}"):
                if self.options.source == "virtual":
                    acq = self._acquire_virtual(kind)
                elif self.options.source == "files":
                    acq = self._acquire_files(kind)
                else:
                    acq = self._acquire_received(kind)
            state = self.state.with_acquisition(acq)
            for path in acq.files:  # recorded in the same atomic save as the acquisition itself
                created = self._acquired_object(Path(path))
                if created is not None:
                    state = state.with_created(created)
            self._save(state)
        return self.state.acquisitions

    def _acquired_object(self, path: Path) -> CreatedObject | None:
        """The acquired file as an object to store at close (IOD-7: CT + isocenters switch)."""
        f = read_file(path, stop_before_pixels=True)
        kind = {"RTIMAGE": "RTIMAGE", "CT": "CT", "RTSTRUCT": "RTSTRUCT-ISO"}.get(
            str(f.dataset.get("Modality", "")).upper(), "OTHER")
        if kind in ("CT", "RTSTRUCT-ISO") and not self.settings.storage.store_ct_isocenters:
            return None
        return CreatedObject(f.sop_instance_uid, f.sop_class_uid, kind, str(path))

    def _acquire_virtual(self, kind: str) -> Acquisition:
        from openigrt.workflow.acquire import TableTopShift, acquire

        loaded = self.load()
        beams = self._beams_for(kind)
        setup = self.options.setup or VirtualSetup.random(self.options.seed)
        shift = TableTopShift(*(setup.kv if kind == "kv" else setup.cbct))
        out = self.workdir / "acquired" / kind
        if out.exists():  # an interrupted earlier attempt: start it again
            shutil.rmtree(out)
        self._say("acquire", f"virtual {kind} acquisition of beam(s) {', '.join(map(str, beams))}, "
                  f"setup error {shift.as_dict()}")
        ct, _ = self.live.ct.read(loaded.ct_paths)
        result = acquire(kind=kind, plan_dataset=read_file(loaded.plan_path).dataset, ct_volume=ct.volume,
                         beam_numbers=beams, shift=shift, out_dir=out, settings=self.settings,
                         seed=self.options.seed + (1 if kind == "cbct" else 0), cbct_model=self.options.cbct_model,
                         progress=lambda msg: self._say("acquire", msg))
        return Acquisition(kind, kind, beams, tuple(str(p) for p in result.files), truth=str(result.truth_path),
                           source="virtual")

    def _acquire_files(self, kind: str) -> Acquisition:
        files, problems = read_paths(list(self.options.acquired_paths))
        if problems:
            raise FractionFailed(f"acquired files: {problems[0]}")
        want = {"kv": {"RTIMAGE"}, "cbct": {"CT", "RTSTRUCT"}}[kind]
        chosen = [f for f in files if str(f.dataset.get("Modality", "")).upper() in want]
        if kind == "cbct" and not any(str(f.dataset.get("Modality", "")).upper() == "CT" for f in chosen):
            raise FractionFailed("3D/3D needs the verification CBCT slices among --acquired")
        if not chosen:
            raise FractionFailed(f"no {'RT Image' if kind == 'kv' else 'CT'} among the --acquired files")
        out = self.workdir / "acquired" / kind
        out.mkdir(parents=True, exist_ok=True)
        copied = []
        for f in chosen:
            dest = out / f"{f.dataset.Modality}_{f.sop_instance_uid}.dcm"
            shutil.copyfile(f.path, dest) if f.path else f.dataset.save_as(dest, enforce_file_format=True)
            copied.append(str(dest))
        beams = tuple(sorted({int(f.dataset.get("ReferencedBeamNumber", 0) or 0) for f in chosen} - {0}))
        self._say("acquire", f"{len(copied)} {kind} file(s) taken from --acquired")
        return Acquisition(kind, kind, beams, tuple(copied), source="files")

    def _acquire_received(self, kind: str) -> Acquisition:
        from openigrt.net.scp import StorageSCP

        plan_uid = self.state.plan_uid
        cache = self.client.cache
        since = time.time()
        deadline = since + self.options.receive_timeout_s
        self._say("acquire", f"waiting up to {self.options.receive_timeout_s:.0f} s for {kind} images on port "
                  f"{self.settings.local.port}")
        with StorageSCP(self.settings, cache):
            while time.time() < deadline:
                got = self._received_since(kind, since, plan_uid)
                if got:
                    time.sleep(2.0)  # let the rest of the series arrive
                    got = self._received_since(kind, since, plan_uid)
                    return Acquisition(kind, kind, (), tuple(got), source="received")
                time.sleep(0.5)
        raise FractionFailed(f"no {kind} image received within {self.options.receive_timeout_s:.0f} s")

    def _received_since(self, kind: str, since: float, plan_uid: str) -> list[str]:
        from datetime import datetime

        out = []
        for inst in self.client.cache:
            try:
                when = datetime.fromisoformat(inst.received_at).timestamp()
            except ValueError:
                continue
            if when < since:
                continue
            if kind == "kv" and inst.modality == "RTIMAGE":
                ds = inst.read(stop_before_pixels=True)
                refs = [r.ReferencedSOPInstanceUID for r in ds.get("ReferencedRTPlanSequence", [])]
                if plan_uid in refs:
                    out.append(str(inst.path))
            elif kind == "cbct" and inst.modality in ("CT", "RTSTRUCT"):
                out.append(str(inst.path))
        return out

    # ------------------------------------------------------------------ match (MATCH-1 … 6)
    def _acq(self, kind: str) -> Acquisition:
        return self.state.acquisition(kind)

    def _match_inputs(self, match_type: str) -> dict[str, Any]:
        """The files a match uses (recorded in its MatchRecord, so the review can show them)."""
        loaded = self.load()
        ct = [str(p) for p in loaded.ct_paths]
        ss = str(loaded.structure_set_path) if loaded.structure_set_path else None
        files = [Path(p) for p in self._acq(ACQUISITION_OF[match_type]).files]
        if match_type == "3d3d":
            return {"reference": ct, "acquired": [str(p) for p in files], "ct": ct, "structure_set": ss}
        rt_images = [p for p in files if p.name.upper().startswith(("RI", "RTIMAGE"))] or files
        acquired_by_beam = {int(read_file(p, stop_before_pixels=True).dataset.get("ReferencedBeamNumber", 0)): p
                            for p in rt_images}
        evaluation = self.evaluations.get(match_type)
        used = evaluation.used_beams if evaluation is not None else ()
        beams = [b for b in used if b in acquired_by_beam] or sorted(acquired_by_beam)
        beams = beams[:1] if match_type == "2d" else beams[:2]
        acquired = [str(acquired_by_beam[b]) for b in beams]
        if match_type == "marker":
            return {"reference": [], "acquired": acquired, "ct": ct, "structure_set": ss}
        by_beam = self._references_by_beam()
        missing = [b for b in beams if b not in by_beam]
        if missing:
            raise FractionFailed(f"{match_type}: no reference image for beam(s) {missing}")
        return {"reference": [str(by_beam[b]) for b in beams], "acquired": acquired, "ct": ct, "structure_set": ss}

    def _run_match(self, match_type: str) -> MatchOutcome:
        plan = self.load().plan
        inputs = self._match_inputs(match_type)

        def paths(key: str) -> list[Path]:
            return [Path(p) for p in inputs[key]]

        ss = Path(inputs["structure_set"]) if inputs["structure_set"] else None
        cache = self.live.ct
        if match_type == "3d3d":
            return run_3d3d(reference_ct=paths("ct"), verification=paths("acquired"), plan=plan, structure_set=ss,
                            ct_cache=cache)
        if match_type == "marker":
            return run_marker(ct=paths("ct"), acquired=paths("acquired"), structure_set=ss, plan=plan, ct_cache=cache)
        if match_type == "2d":
            return run_2d(reference=paths("reference")[0], acquired=paths("acquired")[0], plan=plan)
        return run_2d2d(references=paths("reference"), acquired=paths("acquired"), ct=paths("ct"), plan=plan,
                        ct_cache=cache)

    def _references_by_beam(self) -> dict[int, Path]:
        out = {}
        for p in self.load().reference_paths:
            n = read_file(p, stop_before_pixels=True).dataset.get("ReferencedBeamNumber")
            if n is not None:
                out[int(n)] = Path(p)
        return out

    def match(self) -> tuple[MatchRecord, ...]:
        if not self.evaluations:
            self.validate()
        for i, m in enumerate(self.options.match_types):
            if any(r.match_id == m for r in self.state.matches):
                self._say("match", f"{m} match already in the session")
                continue
            self._say("match", f"{m} match", i, len(self.options.match_types))
            try:
                with self.clock.step(f"match {m}"):
                    outcome = require_success(self._run_match(m))  # not converged / plateau: a failure
            except (RegistrationError, PreconditionError) as exc:
                raise FractionFailed(f"{m} match failed: {exc}") from None
            if m == "2d":
                outcome = replace(outcome, extra={**outcome.extra, "couch_axes_not_seen": _axes_along_beam(outcome)})
            self.live.outcomes[m] = outcome
            record = MatchRecord(m, m, ACQUISITION_OF[m], json.loads(json.dumps(outcome.report(), default=float)),
                                 inputs=self._match_inputs(m))
            with self.clock.step(f"review picture {m}"):
                record = replace(record, review_png=str(self._review(outcome)))
            # the match and the objects it created are recorded in one atomic save
            self._save(self._with_created_for(self.state.with_match(record), outcome))
            couch = outcome.couch() or {}
            self._say("match", f"{m}: couch correction " + ", ".join(f"{k} {v:+.2f}" for k, v in couch.items()))
        return self.state.matches

    def _with_created_for(self, state: SessionState, outcome: MatchOutcome) -> SessionState:
        """Write the objects a match creates and return *state* recording them (IOD-1, 3, 5; IOD-7)."""
        m = outcome.match_type
        out = self.workdir / "created" / m
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        state = state.without_match_objects(m)
        objects = []
        if self.settings.storage.store_registrations:
            objects.append(("REG", registration(outcome, settings=self.settings)))
        if m == "marker" and self.settings.storage.store_markers:
            objects += [("RTIMAGE-CURVES", ds) for ds in marker_images(outcome)]
            if self.live.loaded is not None and self.live.loaded.structure_set_path is not None:
                original = read_file(self.live.loaded.structure_set_path).dataset
                objects.append(("RTSTRUCT-MARKER", marker_structure_set(outcome, original_structure_set=original,
                                                                        settings=self.settings)))
        for kind, ds in objects:
            path = write_file(ds, out / f"{kind}_{ds.SOPInstanceUID}.dcm")
            state = state.with_created(CreatedObject(str(ds.SOPInstanceUID), str(ds.SOPClassUID), kind, str(path),
                                                     match_id=m))
        return state

    def _review(self, outcome: MatchOutcome) -> Path:
        from openigrt.workflow.review_panels import review_picture
        from openigrt.workflow.review import render_review

        truth = expected_correction(self.state, outcome.match_type)
        path = self.workdir / "review" / f"{outcome.match_type}.png"
        return render_review(review_picture(outcome, truth=truth), path)

    # ------------------------------------------------------------------ review and decide (MATCH-7)
    def review_and_decide(self) -> None:
        from openigrt.workflow.review import write_html

        pages = [(f"{r.match_type} match — {r.decision}", Path(r.review_png), _couch_lines(r)) for r in self.state.matches
                 if r.review_png]
        if pages:
            write_html(pages, self.workdir / "review" / "index.html", title=f"OpenIGRT review — plan {self.state.plan_uid}")
        for match_id in [r.match_id for r in self.state.matches]:
            record = self.state.match(match_id)
            if record.decision != PROPOSED:
                continue
            outcome = self.live.outcomes.get(record.match_id) or self._rerun(record)
            decision = self.decide(outcome, record)
            if decision.recorded:  # the decider (browser review) wrote the state itself
                self.state = self.store.load()
                if self.state.match(match_id).decision == PROPOSED:
                    raise FractionFailed(f"the {match_id} match was not decided; the session stays open (run again)")
                continue
            if decision.decision not in (ACCEPTED, REJECTED):
                raise WorkflowError(f"decision must be accepted or rejected, got {decision.decision!r}")
            state = self.state
            if decision.adjustment_mm is not None and decision.decision == ACCEPTED:
                outcome = outcome.adjusted(*decision.adjustment_mm)
                self.live.outcomes[record.match_id] = outcome
                record = replace(record, result={**json.loads(json.dumps(outcome.report(), default=float)),
                                                 "automatic_couch": record.result.get("couch")})
                state = self._with_created_for(state.with_match(record), outcome)
            # the decision and the objects of an adjusted match are recorded in one atomic save
            self._save(state.with_decision(record.match_id, decision.decision, decision.adjustment_mm,
                                           decided_by=decision.decided_by))
            self._say("review", f"{record.match_id} match {decision.decision}"
                      + (f" with adjustment {decision.adjustment_mm} mm" if decision.adjustment_mm else ""))

    def _rerun(self, record: MatchRecord) -> MatchOutcome:
        self._say("match", f"re-running the {record.match_id} match to review it")
        outcome = self._run_match(record.match_id)
        self.live.outcomes[record.match_id] = outcome
        return outcome

    # ------------------------------------------------------------------ close fraction (NET-1/2, NET-10)
    def close(self) -> SessionState:
        todo = self.state.unstored()
        if not todo:
            self._say("store", "nothing left to store")
            self._save(replace(self.state, closed=True))
            return self.state
        try:
            self.client.echo()
        except OpenIGRTError as exc:
            raise FractionFailed(f"TMS {self.client.remote} did not answer {self.client.echo_name}; nothing stored: "
                                 f"{exc}") from None
        order = {"CT": 0, "RTIMAGE": 1, "RTIMAGE-CURVES": 1, "RTSTRUCT-ISO": 2, "RTSTRUCT-MARKER": 2, "REG": 3}
        todo = tuple(sorted(todo, key=lambda c: order.get(c.kind, 9)))

        def progress(done: int, total: int, result: Any) -> None:
            self._say("store", f"{done}/{total} {getattr(result, 'sop_instance_uid', '')}", done, total)

        report = self.client.store([Path(c.path) for c in todo], progress=progress)
        state = self.state
        for obj, res in zip(todo, report.results):
            if res.outcome.value in ("sent", "warning"):
                state = state.with_stored(obj, f"0x{res.status:04X}" if res.status is not None else "0x0000")
        self._save(state)
        failed = [r for r in report.results if r.outcome.value not in ("sent", "warning")]
        if failed:
            first = failed[0]
            raise FractionFailed(f"{len(failed)} of {len(todo)} object(s) not stored at {self.client.remote}: "
                                 f"{first.sop_instance_uid}: {first.message or first.outcome.value}"
                                 + (f" ({report.error})" if report.error else ""))
        self._save(replace(self.state, closed=True))
        how = "over one association" if self.client.protocol == "DIMSE" else "by STOW-RS"
        self._say("store", f"{len(todo)} object(s) stored at {self.client.remote} {how}")
        return self.state


def _couch_lines(record: MatchRecord) -> list[str]:
    from openigrt.workflow.review import couch_lines

    couch = record.result.get("couch") or {}
    return couch_lines(couch) if couch else ["couch correction not available"]


def expected_correction(state: SessionState, match_type: str) -> dict[str, float] | None:
    """The virtual imager's ground-truth couch correction for *match_type* (None when not simulated)."""
    acq = next((a for a in state.acquisitions if a.acquisition_id == ACQUISITION_OF.get(match_type)), None)
    if acq is None or not acq.truth:
        return None
    try:
        return dict(json.loads(Path(acq.truth).read_text())["expected_couch_correction"])
    except (OSError, KeyError, ValueError):
        return None


def match_summary(state: SessionState) -> list[dict[str, Any]]:
    """One row per match: type, decision, couch correction, ground truth (virtual), error, stored."""
    rows = []
    stored = {c.match_id for c in state.created if c.stored and c.match_id}
    for r in state.matches:
        truth = expected_correction(state, r.match_type)
        rows.append({"match": r.match_type, "decision": r.decision, "couch": r.result.get("couch"),
                     "truth": truth, "stored": r.match_id in stored, "review_png": r.review_png,
                     "automatic_couch": r.result.get("automatic_couch") or r.result.get("couch"),
                     "adjustment": r.result.get("adjustment") or r.result.get("adjustment_mm"),
                     "decided_by": r.decided_by, "decided_at": r.decided_at,
                     "metric": r.result.get("metric"), "elapsed_s": r.result.get("elapsed_s"),
                     "couch_axes_not_seen": r.result.get("couch_axes_not_seen", [])})
    return rows


def _axes_along_beam(outcome: MatchOutcome) -> list[str]:
    """The couch axis a single view cannot see: the table-top axis closest to its beam axis."""
    from openigrt.geometry.iec61217 import patient_axes_in_table_top

    axis = patient_axes_in_table_top(outcome.context.patient_position) @ outcome.acquired[0].geometry.beam_axis_patient()
    return [("lat_mm", "lng_mm", "vrt_mm")[int(np.argmax(np.abs(axis)))]]
