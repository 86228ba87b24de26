"""Simulated verification CBCT with a known setup error (SPEC SIM-3, 3D).

The planning CT, without its own couch, is resampled through the setup error ``T`` (**reference → verification patient
mm**: a voxel at verification position ``x`` shows the CT at ``T⁻¹(x)``, so a fiducial at ``p``
in the CT appears at ``T(p)`` in the CBCT) onto an axial CBCT grid centred on the machine
isocenter (the INITLASERISO point, verification coordinates), then degraded the way CBCTs are:

* blur (reconstruction kernel), HU scale and offset (CBCT numbers are not calibrated HU),
* cupping (the centre reads darker: ``−cupping_hu · (1 − r²/R²)``) and a low-frequency shading
  gradient,
* correlated Gaussian noise,
* a cylindrical field of view (diameter ``fov_diameter_mm``; outside = ``fill_value``) and a
  limited length (the grid's z extent),
* the linac's treatment couch under the patient (:mod:`openigrt.sim.treatment_couch`; it does
  not follow the setup rotation).

This is ``--cbct-model fast``; :mod:`openigrt.sim.cbct_fdk` (``fdk``) makes the CBCT from
simulated projections and an FDK reconstruction instead.

All parameters are in :class:`CbctParams`; same inputs and seed → identical volume.

>>> from openigrt.sim.phantom import make_phantom, PhantomParams
>>> from openigrt.geometry.rigid import RigidTransform
>>> ph = make_phantom(PhantomParams.small())
>>> cb = simulate_cbct(ph.volume, setup_error=RigidTransform.identity(), isocenter_mm=ph.isocenter_mm,
...                    params=CbctParams.small(), seed=3)
>>> cb.shape, cb.array.dtype.name
((34, 84, 84), 'int16')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.geometry.iec61217 import patient_axes_in_table_top
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.sim.treatment_couch import CouchPlacement, CouchSpec, TreatmentCouch, place_treatment_couch, remove_ct_couch

__all__ = ["CbctParams", "simulate_cbct", "cbct_grid"]


@dataclass(frozen=True)
class CbctParams:
    """CBCT grid and degradations (defaults: a pelvis CBCT, 1 mm × 2 mm voxels, 250 × 170 mm FOV).

    Parameters
    ----------
    pixel_mm, slice_mm
        In-plane pixel size and slice spacing.
    columns
        In-plane grid size (rows = columns).
    length_mm
        Scanned length (z extent); the number of slices is ``round(length_mm / slice_mm)``.
    fov_diameter_mm
        Reconstructed cylinder diameter; voxels outside get ``fill_value``.
    fill_value
        HU outside the field of view.
    blur_mm
        Gaussian blur (σ, mm) of the reconstruction.
    hu_scale, hu_offset
        Linear HU miscalibration ``HU' = hu_scale · HU + hu_offset``.
    cupping_hu
        Cupping depth at the centre (HU, subtracted).
    shading_hu
        Amplitude of a lateral-to-AP linear shading gradient across the FOV (HU).
    noise_hu, noise_correlation_mm
        Noise standard deviation (after correlation) and correlation length (Gaussian σ, mm).
    """

    pixel_mm: float = 1.0
    slice_mm: float = 2.0
    columns: int = 256
    length_mm: float = 170.0
    fov_diameter_mm: float = 250.0
    fill_value: float = -1000.0
    blur_mm: float = 0.6
    hu_scale: float = 0.95
    hu_offset: float = -40.0
    cupping_hu: float = 60.0
    shading_hu: float = 25.0
    noise_hu: float = 25.0
    noise_correlation_mm: float = 0.8

    def __post_init__(self) -> None:
        for name in ("pixel_mm", "slice_mm", "length_mm", "fov_diameter_mm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CbctParams.{name} must be > 0, got {getattr(self, name)}")
        if self.columns < 2:
            raise ValueError(f"CbctParams.columns must be >= 2, got {self.columns}")
        for name in ("blur_mm", "noise_hu", "noise_correlation_mm"):
            if getattr(self, name) < 0:
                raise ValueError(f"CbctParams.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def slices(self) -> int:
        """Number of slices (≥ 2)."""
        return max(2, int(round(self.length_mm / self.slice_mm)))

    @classmethod
    def small(cls, **changes: Any) -> CbctParams:
        """A fast grid for tests: 3 mm × 5 mm voxels, same 250 × 170 mm field of view."""
        base: dict[str, Any] = {"pixel_mm": 3.0, "slice_mm": 5.0, "columns": 84, "blur_mm": 0.0,
                                "noise_correlation_mm": 0.0}
        base.update(changes)
        return cls(**base)

    def with_changes(self, **changes: Any) -> CbctParams:
        """A copy with some fields changed."""
        return replace(self, **changes)


def cbct_grid(isocenter_mm: ArrayLike, params: CbctParams) -> Volume:
    """Empty (zero) axial grid of the CBCT, centred on ``isocenter_mm`` (verification patient mm)."""
    c = np.asarray(isocenter_mm, dtype=float)
    n, nz = params.columns, params.slices
    origin = c - np.array([(n - 1) / 2 * params.pixel_mm, (n - 1) / 2 * params.pixel_mm,
                           (nz - 1) / 2 * params.slice_mm])
    return Volume(np.zeros((nz, n, n), np.float32), tuple(origin),  # type: ignore[arg-type]
                  (params.pixel_mm, params.pixel_mm, params.slice_mm))


def _resample(ct: Volume, grid: Volume, setup_error: RigidTransform) -> NDArray[np.float32]:
    """CT values at ``T⁻¹(x)`` for every grid point ``x`` (linear, −1000 outside), via SimpleITK."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(ct.array, dtype=np.float32))
    img.SetOrigin(ct.origin_mm)
    img.SetSpacing(ct.spacing_mm)
    img.SetDirection(tuple(float(v) for v in ct.direction.ravel()))
    inv = setup_error.inverse()  # output (verification) point -> input (reference) point
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(tuple(float(v) for v in inv.matrix[:3, :3].ravel()))
    tx.SetTranslation(tuple(float(v) for v in inv.matrix[:3, 3]))
    nz, ny, nx = grid.shape
    out = sitk.Resample(img, (nx, ny, nz), tx, sitk.sitkLinear, grid.origin_mm, grid.spacing_mm,
                        tuple(float(v) for v in grid.direction.ravel()), -1000.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def _paint_couch(hu: NDArray[np.float32], grid: Volume, couch: TreatmentCouch, placement: CouchPlacement) -> None:
    """Mix the couch's CT numbers into the resampled CBCT, slice by slice (anti-aliased edges).

    The couch's CT numbers depend only on the table-top lateral and vertical coordinates: when
    neither depends on the slice index (an axial grid: the patient's z is the table-top
    longitudinal axis in every patient position) one slice is computed and used for all, with
    the same values bit for bit as slice by slice (:func:`_couch_same_every_slice`).
    """
    nz, ny, nx = grid.shape
    jj, ii = np.mgrid[0:ny, 0:nx]
    voxel = float(min(grid.spacing_mm))

    def couch_slice(k: int) -> NDArray[np.float64]:
        pts = grid.index_to_patient_mm(np.column_stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)]))
        return couch.hu(pts, placement, voxel_mm=voxel).reshape(ny, nx)

    same = _couch_same_every_slice(grid, placement)
    first = couch_slice(0) if same else None
    for k in range(nz):
        c = first if first is not None else couch_slice(k)
        inside = c > -999.0
        hu[k][inside] = np.maximum(hu[k][inside], c[inside]).astype(np.float32)


def _couch_same_every_slice(grid: Volume, placement: CouchPlacement) -> bool:
    """True when the slice index enters neither the patient x, y of a grid point nor its table-top
    lateral and vertical coordinates (exact zeros in both matrices, so the values are identical)."""
    m = grid.index_to_patient_matrix()
    a = patient_axes_in_table_top(placement.patient_position)
    return bool(m[0, 2] == 0.0 and m[1, 2] == 0.0 and a[0, 2] == 0.0 and a[2, 2] == 0.0)


def simulate_cbct(ct: Volume, *, setup_error: RigidTransform, isocenter_mm: ArrayLike,
                  params: CbctParams = CbctParams(), seed: int = 0, patient_position: str = "HFS",
                  planned_isocenter_mm: ArrayLike | None = None, ct_couch: CouchSpec = "auto",
                  treatment_couch: TreatmentCouch | None = TreatmentCouch()) -> Volume:
    """Verification CBCT (int16 HU) of the patient displaced by ``setup_error`` (SPEC SIM-3).

    Parameters
    ----------
    ct
        Planning CT (reference patient mm, HU).
    setup_error
        Reference → verification patient mm.
    isocenter_mm
        Machine isocenter during acquisition (INITLASERISO), verification coordinates: the centre
        of the CBCT grid and of its field of view.
    params
        Grid and degradations.
    seed
        Seed of the noise.
    patient_position, planned_isocenter_mm
        Of the plan (the planned isocenter defaults to ``isocenter_mm``): where "down" is and
        where the patient rests on the couch.
    ct_couch, treatment_couch
        Where the planning CT's couch is (removed before resampling; see
        :mod:`openigrt.sim.treatment_couch`) and the linac couch painted under the displaced
        patient in verification coordinates (translated with the setup, never rotated; None: no couch).
    """
    from scipy import ndimage

    grid = cbct_grid(isocenter_mm, params)
    patient = remove_ct_couch(ct, ct_couch)
    hu = _resample(patient, grid, setup_error)
    if treatment_couch is not None:
        planned = isocenter_mm if planned_isocenter_mm is None else planned_isocenter_mm
        placement = place_treatment_couch(patient, setup_error=setup_error, patient_position=patient_position,
                                          planned_isocenter_mm=planned, initlaseriso_mm=isocenter_mm)
        _paint_couch(hu, grid, treatment_couch, placement)
    if params.blur_mm > 0:
        hu = ndimage.gaussian_filter(hu, params.blur_mm / np.array(grid.spacing_mm[::-1]), mode="nearest")
    nz, ny, nx = hu.shape
    c = (np.arange(nx) - (nx - 1) / 2) * params.pixel_mm
    xx, yy = np.meshgrid(c, c, indexing="xy")
    radius = params.fov_diameter_mm / 2
    r2 = (xx**2 + yy**2) / radius**2
    inside = r2 <= 1.0
    bias = -params.cupping_hu * (1.0 - np.minimum(r2, 1.0)) + params.shading_hu * (xx + 0.5 * yy) / radius
    hu = params.hu_scale * hu + params.hu_offset + bias[None].astype(np.float32)
    if params.noise_hu > 0:
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal(hu.shape).astype(np.float32)
        if params.noise_correlation_mm > 0:
            noise = ndimage.gaussian_filter(noise, params.noise_correlation_mm / np.array(grid.spacing_mm[::-1]))
        noise *= params.noise_hu / (float(noise.std()) + 1e-12)
        hu += noise
    hu[:, ~inside] = params.fill_value
    out = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return grid.with_array(out)
