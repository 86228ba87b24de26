"""Issue 11: faster simulation paths give the same values as the plain ones, bit for bit.

* the treatment couch painted into the fast CBCT from one computed slice equals painting it
  slice by slice, in every patient position;
* a DRR renderer reused for a second view (the marker match and its review prepare each volume
  once) renders the same image as a renderer prepared for that view alone.
"""

from __future__ import annotations

import numpy as np
import pytest

import openigrt.sim.cbct as cbct
from openigrt.sim.treatment_couch import CouchPlacement, TreatmentCouch

POSITIONS = ("HFS", "HFP", "FFS", "FFP", "HFDL", "HFDR", "FFDL", "FFDR")


@pytest.mark.parametrize("position", POSITIONS)
def test_couch_from_one_slice_equals_slice_by_slice(position: str, monkeypatch: pytest.MonkeyPatch) -> None:
    iso = (3.0, -20.0, 11.0)
    grid = cbct.cbct_grid(iso, cbct.CbctParams.small())
    placement = CouchPlacement(position, iso, top_mm=-95.3, lateral_mm=2.1)
    base = np.random.default_rng(0).uniform(-1000, 500, grid.shape).astype(np.float32)
    assert cbct._couch_same_every_slice(grid, placement)
    fast = base.copy()
    cbct._paint_couch(fast, grid, TreatmentCouch(), placement)
    monkeypatch.setattr(cbct, "_couch_same_every_slice", lambda g, p: False)
    plain = base.copy()
    cbct._paint_couch(plain, grid, TreatmentCouch(), placement)
    assert (plain != base).sum() > 1000  # the couch is there
    assert np.array_equal(fast, plain)


def test_oblique_grid_is_painted_slice_by_slice() -> None:
    from openigrt.geometry.rigid import RigidTransform

    iso = (0.0, 0.0, 0.0)
    grid = cbct.cbct_grid(iso, cbct.CbctParams.small())
    tilt = RigidTransform.from_parameters(rotation_deg=(10.0, 0.0, 0.0)).matrix[:3, :3]
    oblique = type(grid)(grid.array, grid.origin_mm, grid.spacing_mm, tilt)
    assert not cbct._couch_same_every_slice(oblique, CouchPlacement("HFS", iso, top_mm=-90.0))


def test_reused_renderer_renders_what_a_fresh_one_does() -> None:
    from openigrt.geometry.projection import kv_geometry
    from openigrt.sim.drr import DrrRenderer
    from openigrt.sim.phantom import PhantomParams, make_phantom

    ph = make_phantom(PhantomParams.small())
    views = [kv_geometry(g, isocenter_mm=ph.isocenter_mm, rows=96, columns=128, pixel_spacing_mm=(1.5, 1.5))
             for g in (0.0, 90.0)]
    shared = DrrRenderer(ph.volume)
    shared.render(views[0])
    assert np.array_equal(shared.render(views[1]), DrrRenderer(ph.volume).render(views[1]))
