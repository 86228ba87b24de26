"""Live demo sessions paused at the decide step with the review page served (``--decision web``).

``hfs_demo``: the small phantom (HFS), all four match types; ``ffs_demo``: the same phantom
planned feet first supine (FFS), 2D/2D only — written first with
``write_phantom_patient(patient_position="FFS")`` (CT, plan, reference DRRs and the virtual imager
all follow it), which the demo then reuses. Each
runs :func:`openigrt.workflow.demo.run_demo` in a thread with the real web decider; the test
decides in the browser and the demo then stores to its embedded archive and finishes.
``pristine_session`` copies the HFS session before any decision, for tests that decide on their own.
"""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from openigrt.config import load_settings
from openigrt.workflow.state import PROPOSED, REJECTED

START_TIMEOUT_S = 420
FINISH_TIMEOUT_S = 240


@dataclass
class LiveDemo:
    workdir: Path
    url: str
    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def session_dir(self) -> Path:
        return self.workdir / "session"

    def finish(self, timeout: float = FINISH_TIMEOUT_S) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the demo did not finish after the decisions"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["result"]


def copy_session(src: Path, dst: Path) -> Path:
    """Copy a session directory; paths inside it that pointed into *src* point into *dst*."""
    shutil.copytree(src, dst)
    state = dst / "session.json"
    state.write_text(state.read_text().replace(str(src), str(dst)))
    return dst


def _start(workdir: Path, match_types: tuple[str, ...], position: str | None,
           pristine: Path | None = None) -> LiveDemo:
    from openigrt.web.server import web_decider
    from openigrt.workflow.demo import run_demo
    from openigrt.workflow.phantom import write_phantom_patient

    settings = load_settings(None, {"review.decision_timeout_s": "600"})
    urls: queue.Queue[str] = queue.Queue()
    session_dir = workdir / "session"

    def announce(url: str) -> None:
        if pristine is not None:
            copy_session(session_dir, pristine)
        urls.put(url)

    decide = web_decider(session_dir, settings, announce=announce)
    outcome: dict[str, Any] = {}
    if position is not None:
        write_phantom_patient(workdir / "phantom", settings=settings, small=True, patient_position=position)

    def run() -> None:
        try:
            outcome["result"] = run_demo(settings=settings, workdir=workdir, match_types=match_types, small=True,
                                         decide=decide)
        except BaseException as exc:  # reported by finish()
            outcome["error"] = exc
        finally:
            urls.put("")

    thread = threading.Thread(target=run, daemon=True, name=f"demo-{position or 'HFS'}")
    thread.start()
    url = urls.get(timeout=START_TIMEOUT_S)
    if not url:
        raise AssertionError(f"the demo ended before serving the review: {outcome.get('error')!r}")
    return LiveDemo(workdir, url, thread, outcome)


def _stop(demo: LiveDemo) -> None:
    """Reject whatever a failed test left undecided, so the demo thread ends."""
    if demo.thread.is_alive():
        from openigrt.workflow.review_adjust import Adjustment
        from openigrt.workflow.review_session import ReviewSession

        review = ReviewSession(demo.session_dir, load_settings())
        for m in review.state().matches:
            if m.decision == PROPOSED:
                review.decide(m.match_id, REJECTED, Adjustment(), decided_by="test teardown")
        demo.thread.join(FINISH_TIMEOUT_S)


@pytest.fixture(scope="session")
def hfs_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    root = tmp_path_factory.mktemp("hfs")
    demo = _start(root / "demo", ("2d", "2d2d", "marker", "3d3d"), None, pristine=root / "pristine")
    yield demo
    _stop(demo)


@pytest.fixture(scope="session")
def pristine_session(hfs_demo: LiveDemo) -> Path:
    """The HFS session as it was when the page was first served (every match proposed)."""
    return hfs_demo.workdir.parent / "pristine"


@pytest.fixture
def session_copy(pristine_session: Path, tmp_path: Path) -> Path:
    return copy_session(pristine_session, tmp_path / "session")


@pytest.fixture(scope="session")
def ffs_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    demo = _start(tmp_path_factory.mktemp("ffs") / "demo", ("2d2d",), "FFS")
    yield demo
    _stop(demo)
