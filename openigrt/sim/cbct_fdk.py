"""CBCT by physics (SPEC SIM-3, ``--cbct-model fdk``): projections over the arc, FDK by RTK.

The same inputs as :func:`openigrt.sim.cbct.simulate_cbct` (planning CT, setup error ``T``
reference → verification patient mm, INITLASERISO, :class:`~openigrt.sim.cbct.CbctParams` grid)
give a CBCT on the same grid (axial, centred on INITLASERISO, int16 HU, −1000 outside the
cylindrical field of view), but made the way a linac's kV imager makes it:

1. **Scan** (:class:`CbctScan`): kV source angles over the arc of a linac CBCT — *full fan*: a
   200° short scan with the 400 × 300 mm panel centred (FOV ⌀ 264 mm); *half fan*: 360° with the
   panel shifted laterally by 160 mm (FOV ⌀ 466 mm) — SAD 1000, SID 1500, the panel binned 4 × 4
   (256 × 192 pixels of 1.55 mm). Each view is a
   :class:`~openigrt.geometry.projection.ProjectionGeometry` (kV source angle in IEC FIXED,
   receptor translation for the half fan), i.e. exactly what our RT Images and DRRs use.
2. **Line integrals** with :class:`~openigrt.sim.drr.DrrRenderer` (prepared once, reused for
   every view) of three material channels of the CT without its own couch (water-equivalent,
   bone excess, metal: :class:`~openigrt.sim.xray.MaterialDecomposition`) seen through ``T``,
   plus the treatment couch (:mod:`openigrt.sim.treatment_couch`) in verification coordinates,
   not moved by ``T``'s rotation.
3. **Detector signal** (:class:`CbctPhysics`): tungsten spectrum (125 kVp) through an
   aluminium bow-tie (thickness growing with the fan angle), polyenergetic attenuation
   (beam hardening), CsI energy-integrating response, anode heel along the gantry axis, smooth
   additive scatter depending on the object's thickness (scatter-to-primary 0.5 behind 200 mm of
   water), Poisson quantum noise at the clinical fluence (total mAs of a pelvis scan spread over
   the views), detector blur, electronic noise; flood-field normalisation and ``−ln``.
4. **FDK** by RTK (``itk-rtk``): ``rtk.ThreeDCircularProjectionGeometry`` built from the same
   ProjectionGeometry objects (RTK's fixed frame *is* IEC FIXED; its detector (u, v) are our
   receptor (x_r, y_r); rows are flipped because our rows run along −Y_r), Parker weights for the
   short scan, displaced-detector weights for the half fan, ``rtk.FDKConeBeamReconstructionFilter``
   (Hann-apodised ramp) straight onto the CBCT grid, whose patient axes are given to RTK as the
   image direction (PatientToFixed at INITLASERISO). μ → HU with the water μ of this beam behind
   200 mm of water, its scatter included (a CBCT's water calibration), so beam hardening and scatter leave cupping and a
   real CBCT's HU error; truncation, cone-beam and view-sampling artefacts and marker streaks come
   from the physics, not from a recipe.

RTK's Python module takes ~20 s to load on first use in a process (its SWIG wrappers; measured,
``benchmarks/cbct_bench.py``); the simulation itself is timed separately.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.geometry.iec61217 import PatientPosition, PatientToFixed
from openigrt.geometry.projection import KV_PIXEL_SPACING_MM, KV_SID_MM, SAD_MM, ProjectionGeometry
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.sim.cbct import CbctParams, cbct_grid
from openigrt.sim.drr import DrrRenderer
from openigrt.sim.treatment_couch import (
    CouchPlacement,
    CouchSpec,
    TreatmentCouch,
    couch_volume,
    place_treatment_couch,
    remove_ct_couch,
)
from openigrt.sim.xray import (
    ENERGIES_KEV,
    FLUENCE_PER_MAS_MM2_AT_1M,
    REFERENCE_WATER_MM,
    MaterialDecomposition,
    Spectrum,
    detect,
    detector_weight,
    heel_profile,
    mu_per_mm,
    polychromatic_transmission,
    scatter_field,
)

__all__ = ["FANS", "CbctScan", "CbctPhysics", "FdkCbct", "simulate_cbct_fdk", "scan_geometries",
           "rtk_geometry", "fdk_reconstruct", "field_of_view_radius_mm"]

#: Scan modes.
FANS = ("full", "half")
#: Default number of views per scan mode (about one per 1.6° of the arc for the full fan and one
#: per 1.8° for the half fan — a few times fewer than a clinical scan, for speed; the dose is
#: kept: the total mAs is spread over the views).
DEFAULT_PROJECTIONS = {"full": 125, "half": 200}
#: Arc of each mode (degrees): short scan = 180° + fan angle (15.2°) + margin; half fan: full turn.
DEFAULT_ARC_DEG = {"full": 200.0, "half": 360.0}
#: Lateral shift of the panel for the half fan, at the detector plane (mm).
HALF_FAN_OFFSET_MM = 160.0


@dataclass(frozen=True)
class CbctScan:
    """Acquisition geometry of one CBCT (defaults: a linac kV imager, pelvis half-fan protocol).

    Parameters
    ----------
    fan
        ``"full"`` (short scan, centred panel) or ``"half"`` (360°, panel shifted by ``half_fan_offset_mm``).
    projections, arc_deg
        Views and arc; 0 = :data:`DEFAULT_PROJECTIONS` / :data:`DEFAULT_ARC_DEG` of the mode.
    start_angle_deg
        kV source angle (IEC FIXED) of the first view; the source turns with increasing angle.
    sad_mm, sid_mm
        Source–isocenter and source–panel distances.
    panel_columns, panel_rows, panel_pixel_mm
        The unbinned panel (1024 × 768 at 0.388 mm = 397 × 298 mm).
    binning
        Pixels binned per side in the projections.
    kvp, mas
        Tube voltage (a tabulated spectrum) and total tube charge of the scan.
    """

    fan: str = "half"
    projections: int = 0
    arc_deg: float = 0.0
    start_angle_deg: float = 180.0
    sad_mm: float = SAD_MM
    sid_mm: float = KV_SID_MM
    panel_columns: int = 1024
    panel_rows: int = 768
    panel_pixel_mm: float = KV_PIXEL_SPACING_MM
    binning: int = 4
    half_fan_offset_mm: float = HALF_FAN_OFFSET_MM
    kvp: float = 125.0
    mas: float = 680.0

    def __post_init__(self) -> None:
        if self.fan not in FANS:
            raise ValueError(f"CbctScan.fan must be one of {FANS}, got {self.fan!r}")
        if self.projections < 0 or self.projections == 1:
            raise ValueError(f"CbctScan.projections must be 0 (default) or >= 2, got {self.projections}")
        if not 0 <= self.arc_deg <= 360:
            raise ValueError(f"CbctScan.arc_deg must be in [0, 360], got {self.arc_deg}")
        if self.binning < 1 or self.panel_columns < self.binning or self.panel_rows < self.binning:
            raise ValueError(f"CbctScan.binning must be >= 1 and fit the panel, got {self.binning}")
        if not (self.sid_mm > self.sad_mm > 0 and self.mas > 0):
            raise ValueError("CbctScan needs SID > SAD > 0 and mas > 0")
        Spectrum.tabulated(self.kvp)  # raises for an unknown kVp

    @property
    def views(self) -> int:
        return self.projections or DEFAULT_PROJECTIONS[self.fan]

    @property
    def arc(self) -> float:
        return self.arc_deg or DEFAULT_ARC_DEG[self.fan]

    @property
    def columns(self) -> int:
        return self.panel_columns // self.binning

    @property
    def rows(self) -> int:
        return self.panel_rows // self.binning

    @property
    def pixel_mm(self) -> float:
        return self.panel_pixel_mm * self.binning

    @property
    def receptor_x_mm(self) -> float:
        """Lateral receptor translation (IEC GANTRY x, mm)."""
        return self.half_fan_offset_mm if self.fan == "half" else 0.0

    def angles_deg(self) -> NDArray[np.float64]:
        """kV source angle of every view (a full turn does not repeat its first view)."""
        n, arc = self.views, self.arc
        step = arc / n if arc >= 360.0 else arc / (n - 1)
        return (self.start_angle_deg + step * np.arange(n)) % 360.0

    def with_changes(self, **changes: Any) -> CbctScan:
        return replace(self, **changes)


@dataclass(frozen=True)
class CbctPhysics:
    """Beam, object and detector physics of the projections (all parameters physical).

    Parameters
    ----------
    decomposition
        Planning-CT HU → water / bone / metal channels.
    bowtie_center_al_mm, bowtie_edge_al_mm
        Aluminium bow-tie thickness on the central ray and at the edge of the field of view
        (quadratic in between, constant beyond).
    scatter_to_primary, scatter_sigma_mm
        Scatter-to-primary ratio behind :data:`~openigrt.sim.xray.REFERENCE_WATER_MM` of water
        (residual scatter of a linac CBCT with its bow-tie; it grows with the thickness) and the
        width of the scatter kernel on the panel.
    heel_anode_angle_deg, heel_self_filtration
        Anode heel along the gantry axis (panel rows): anode angle and ``μ_W · depth``.
    electronic_noise
        Electronic noise per unbinned pixel (quanta); binned pixels add it in quadrature.
    blur_sigma_px
        Panel PSF (Gaussian σ) in binned pixels.
    hann_cut
        Hann apodisation of the FDK ramp (cut frequency as a fraction of Nyquist; 0 = plain ramp).
    """

    decomposition: MaterialDecomposition = field(default_factory=MaterialDecomposition)
    bowtie_center_al_mm: float = 2.0
    bowtie_edge_al_mm: float = 22.0
    scatter_to_primary: float = 0.5
    scatter_sigma_mm: float = 60.0
    heel_anode_angle_deg: float = 14.0
    heel_self_filtration: float = 0.035
    electronic_noise: float = 10.0
    blur_sigma_px: float = 0.4
    hann_cut: float = 0.9

    def __post_init__(self) -> None:
        for name in ("bowtie_center_al_mm", "bowtie_edge_al_mm", "scatter_to_primary", "scatter_sigma_mm",
                     "electronic_noise", "blur_sigma_px", "hann_cut", "heel_self_filtration"):
            if getattr(self, name) < 0:
                raise ValueError(f"CbctPhysics.{name} must be >= 0, got {getattr(self, name)}")

    def with_changes(self, **changes: Any) -> CbctPhysics:
        return replace(self, **changes)


@dataclass(frozen=True, eq=False)
class FdkCbct:
    """A simulated CBCT and how it was made (timings in seconds)."""

    volume: Volume
    fov_radius_mm: float
    projections_s: float
    reconstruction_s: float
    rtk_load_s: float
    couch: CouchPlacement | None
    hu_mu_water_per_mm: float


def scan_geometries(scan: CbctScan, *, isocenter_mm: ArrayLike, patient_position: PatientPosition | str = "HFS",
                    patient_support_angle_deg: float = 0.0) -> list[ProjectionGeometry]:
    """The binned panel's ProjectionGeometry of every view (verification coordinates)."""
    iso = tuple(float(v) for v in np.asarray(isocenter_mm, float))
    return [ProjectionGeometry(gantry_angle_deg=float(a), rows=scan.rows, columns=scan.columns,
                               pixel_spacing_mm=(scan.pixel_mm, scan.pixel_mm), sad_mm=scan.sad_mm, sid_mm=scan.sid_mm,
                               isocenter_mm=iso, patient_position=patient_position,  # type: ignore[arg-type]
                               patient_support_angle_deg=patient_support_angle_deg,
                               receptor_translation_mm=(scan.receptor_x_mm, 0.0, scan.sad_mm - scan.sid_mm))
            for a in scan.angles_deg()]


def field_of_view_radius_mm(scan: CbctScan) -> float:
    """Radius of the cylinder every view sees (full fan) or half of the views see (half fan)."""
    half_width = scan.columns * scan.pixel_mm / 2
    reach = abs(scan.receptor_x_mm) + half_width if scan.fan == "half" else half_width
    return float(scan.sad_mm * np.sin(np.arctan(reach / scan.sid_mm)))


# ------------------------------------------------------------------------------------------ projections
@dataclass(frozen=True, eq=False)
class _Beam:
    """Per-column open-beam signal weights and the noise-free flood of one panel."""

    channel_mu: NDArray[np.float64]      # (channels, nE)
    column_weights: NDArray[np.float64]  # (cols, nE), sums to the column's relative signal
    flood_quanta: NDArray[np.float64]    # (rows, cols) expected detected quanta, no object
    reference_attenuation: float
    mu_water_eff: float


def _beam(scan: CbctScan, physics: CbctPhysics) -> _Beam:
    spectrum = Spectrum.tabulated(scan.kvp)
    g0 = scan_geometries(scan, isocenter_mm=(0.0, 0.0, 0.0))[0]
    cols = np.arange(scan.columns)
    x_iso = g0.pixel_to_receptor_mm(np.column_stack([cols, np.zeros_like(cols)]))[:, 0] + scan.receptor_x_mm
    x_iso = x_iso * scan.sad_mm / scan.sid_mm  # fan position at the isocenter plane
    w = field_of_view_radius_mm(scan)
    t_al = physics.bowtie_center_al_mm + (physics.bowtie_edge_al_mm - physics.bowtie_center_al_mm) * np.minimum(
        1.0, (x_iso / w) ** 2)
    mu_al = mu_per_mm("aluminium")
    photons = spectrum.photons[None, :] * np.exp(-t_al[:, None] * mu_al[None, :])  # (cols, nE)
    absorbed = 1.0 - np.exp(-mu_per_mm("csi") * 0.6)
    signal = photons * detector_weight()[None, :]
    heel = heel_profile(scan.rows, scan.pixel_mm, scan.sid_mm, anode_angle_deg=physics.heel_anode_angle_deg,
                        self_filtration=physics.heel_self_filtration)
    fluence = FLUENCE_PER_MAS_MM2_AT_1M[spectrum.kvp] * (scan.mas / scan.views) * (1000.0 / scan.sid_mm) ** 2
    quanta_per_column = fluence * scan.pixel_mm**2 * (photons * absorbed[None, :]).sum(axis=1)
    flood = heel[:, None] * quanta_per_column[None, :]
    centre = signal[int(np.argmin(np.abs(x_iso)))]
    mu_w = mu_per_mm("water")
    t_ref = float((centre * np.exp(-mu_w * REFERENCE_WATER_MM)).sum() / centre.sum())
    tau_ref = -np.log(t_ref)
    # water calibration as on a 200 mm water cylinder: its scatter lowers the measured attenuation
    mu_cal = (tau_ref - np.log1p(physics.scatter_to_primary)) / REFERENCE_WATER_MM
    return _Beam(physics.decomposition.channel_mu(), signal, flood, tau_ref, mu_cal)


@dataclass(frozen=True, eq=False)
class _Scene:
    """Prepared renderers: the CT's channels (seen through T) and the treatment couch (not)."""

    patient: tuple[DrrRenderer, ...]
    couch: DrrRenderer | None
    setup_error: RigidTransform


def _scene(ct: Volume, setup_error: RigidTransform, physics: CbctPhysics, couch_grid: Volume | None) -> _Scene:
    channels = physics.decomposition.channels(ct.array)
    patient = tuple(DrrRenderer.from_mu(ct, c) for c in channels)
    couch = None
    if couch_grid is not None:
        couch = DrrRenderer.from_mu(couch_grid, np.maximum(1.0 + np.asarray(couch_grid.array) * 1e-3, 0.0))
    return _Scene(patient, couch, setup_error)


def _view(scene: _Scene, g: ProjectionGeometry, beam: _Beam, physics: CbctPhysics, rng: np.random.Generator,
          scan: CbctScan) -> NDArray[np.float32]:
    """One view: line integrals → polyenergetic signal + scatter → noisy quanta → −ln(I / flood)."""
    lines = np.stack([r.render(g, setup_error=scene.setup_error) for r in scene.patient])
    if scene.couch is not None:
        lines[0] += scene.couch.render(g)
    transmission = polychromatic_transmission(lines, beam.channel_mu, beam.column_weights)
    primary = beam.flood_quanta * transmission
    sigma = physics.scatter_sigma_mm / scan.pixel_mm
    scatter = scatter_field(transmission, beam.flood_quanta, scatter_to_primary=physics.scatter_to_primary,
                            reference_attenuation=beam.reference_attenuation, sigma_px=(sigma, sigma))
    counts = detect(primary + scatter, rng, electronic_noise=physics.electronic_noise * scan.binning,
                    blur_sigma_px=physics.blur_sigma_px)
    return (-np.log(np.maximum(counts, 1.0) / beam.flood_quanta)).astype(np.float32)


# ------------------------------------------------------------------------------------------ RTK
def _rtk() -> tuple[Any, Any, float]:
    """``(itk, rtk, seconds)``: the RTK module, loaded on first use (~20 s once per process)."""
    t0 = time.perf_counter()
    try:
        import itk
        from itk import RTK as rtk
    except ImportError as exc:  # pragma: no cover - itk-rtk is a dependency
        raise RuntimeError("the fdk CBCT model needs the itk-rtk package (pip install itk-rtk)") from exc
    rtk.ThreeDCircularProjectionGeometry  # noqa: B018 - forces the lazy module to load here
    return itk, rtk, time.perf_counter() - t0


def rtk_geometry(geometries: list[ProjectionGeometry]) -> Any:
    """``rtk.ThreeDCircularProjectionGeometry`` of our views (IEC FIXED = RTK's fixed frame).

    Source angle = RTK GantryAngle; SAD = SourceToIsocenterDistance; SID =
    SourceToDetectorDistance; X-Ray Image Receptor Translation (x, y) = ProjectionOffsetX/Y (RTK
    detector (u, v) are our receptor (x_r, y_r)); receptor angle = InPlaneAngle.
    """
    _, rtk, _ = _rtk()
    geom = rtk.ThreeDCircularProjectionGeometry.New()
    for g in geometries:
        tx, ty, _ = g.receptor_translation_mm  # type: ignore[misc]
        geom.AddProjection(g.sad_mm, g.sid_mm, g.gantry_angle_deg, float(tx), float(ty), 0.0, g.receptor_angle_deg,
                           0.0, 0.0)
    return geom


def _projection_image(itk: Any, stack: NDArray[np.float32], g: ProjectionGeometry) -> Any:
    """Our (N, rows, cols) views as an RTK projection stack: rows flipped so v runs along +Y_r."""
    img = itk.image_from_array(np.ascontiguousarray(stack[:, ::-1, :]))
    x0, y0 = g.rt_image_position_mm  # type: ignore[misc]
    dy, dx = g.pixel_spacing_mm
    img.SetOrigin([float(x0), float(y0 - (g.rows - 1) * dy), 0.0])
    img.SetSpacing([float(dx), float(dy), 1.0])
    return img


def fdk_reconstruct(stack: NDArray[np.float32], geometries: list[ProjectionGeometry], grid: Volume, *,
                    short_scan: bool, displaced_detector: bool, hann_cut: float = 0.0) -> NDArray[np.float32]:
    """FDK (RTK) of the views onto ``grid`` (verification patient mm); returns μ (mm⁻¹), grid shape.

    The grid's index axes are given to RTK in IEC FIXED (PatientToFixed at the views' isocenter,
    i.e. INITLASERISO), so the output array is directly ``grid``'s ``(nz, ny, nx)``.
    """
    itk, rtk, _ = _rtk()
    g0 = geometries[0]
    image_type = itk.Image[itk.F, 3]
    geom = rtk_geometry(geometries)
    proj = _projection_image(itk, stack, g0)
    p2f = PatientToFixed(patient_position=g0.patient_position, isocenter_mm=g0.isocenter_mm,
                         patient_support_angle_deg=g0.patient_support_angle_deg).matrix()
    box = _fixed_box(grid, p2f)
    source = rtk.ConstantImageSource[image_type].New()
    source.SetOrigin([float(v) for v in box.origin])
    source.SetSpacing([float(v) for v in box.spacing])
    source.SetSize([int(v) for v in box.size])
    source.SetDirection(itk.matrix_from_array(np.ascontiguousarray(box.direction)))
    source.SetConstant(0.0)
    weighted = proj
    if displaced_detector:
        dd = rtk.DisplacedDetectorImageFilter[image_type].New()
        dd.SetInput(weighted)
        dd.SetGeometry(geom)
        weighted = dd.GetOutput()
    if short_scan:
        parker = rtk.ParkerShortScanImageFilter[image_type].New()
        parker.SetInput(weighted)
        parker.SetGeometry(geom)
        weighted = parker.GetOutput()
    fdk = rtk.FDKConeBeamReconstructionFilter[image_type].New()
    fdk.SetInput(0, source.GetOutput())
    fdk.SetInput(1, weighted)
    fdk.SetGeometry(geom)
    fdk.GetRampFilter().SetTruncationCorrection(0.0)
    if hann_cut > 0:
        fdk.GetRampFilter().SetHannCutFrequency(float(hann_cut))
    fdk.Update()
    return box.to_grid(np.asarray(itk.array_from_image(fdk.GetOutput()), dtype=np.float32))


@dataclass(frozen=True, eq=False)
class _FixedBox:
    """The CBCT grid as an RTK image in IEC FIXED and the way back to the grid's array.

    When the grid's index axes are IEC FIXED axes (any of the eight patient positions at couch
    angles that are multiples of 90°) the same voxels are handed to RTK with an identity direction
    (RTK's back-projector is several times faster with its index axes in its own frame) and the
    result is transposed / flipped back; otherwise the direction matrix is passed on.
    """

    origin: NDArray[np.float64]
    spacing: NDArray[np.float64]
    size: NDArray[np.int64]
    direction: NDArray[np.float64]
    axes: tuple[int, int, int] | None  # fixed axis of grid index axis i, j, k (None: direction passed)
    flips: tuple[bool, bool, bool]

    def to_grid(self, arr: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.axes is None:
            return arr.copy()
        by_fixed = arr.transpose(2, 1, 0)  # [x_f, y_f, z_f]
        ijk = by_fixed.transpose(self.axes)
        for a, flip in enumerate(self.flips):
            if flip:
                ijk = np.flip(ijk, axis=a)
        return np.ascontiguousarray(ijk.transpose(2, 1, 0))


def _fixed_box(grid: Volume, p2f: NDArray[np.float64]) -> _FixedBox:
    d = p2f[:3, :3] @ grid.direction  # column a = IEC FIXED direction of index axis a
    origin = p2f[:3, :3] @ np.asarray(grid.origin_mm) + p2f[:3, 3]
    nz, ny, nx = grid.shape
    n = np.array([nx, ny, nz])
    axes = tuple(int(np.argmax(np.abs(d[:, a]))) for a in range(3))
    if sorted(axes) != [0, 1, 2] or not np.allclose(np.abs(d).max(axis=0), 1.0, atol=1e-9):
        return _FixedBox(origin, np.asarray(grid.spacing_mm), n, d, None, (False, False, False))
    spacing, size, lo = np.zeros(3), np.zeros(3, dtype=np.int64), origin.copy()
    flips = []
    for a, f in enumerate(axes):
        sign = float(np.sign(d[f, a]))
        spacing[f], size[f] = grid.spacing_mm[a], n[a]
        if sign < 0:
            lo[f] = origin[f] - (n[a] - 1) * grid.spacing_mm[a]
        flips.append(sign < 0)
    return _FixedBox(lo, spacing, size, np.eye(3), axes, tuple(flips))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ CBCT
def simulate_cbct_fdk(ct: Volume, *, setup_error: RigidTransform, isocenter_mm: ArrayLike,
                      params: CbctParams = CbctParams(), scan: CbctScan = CbctScan(),
                      physics: CbctPhysics = CbctPhysics(), seed: int = 0,
                      patient_position: PatientPosition | str = "HFS", planned_isocenter_mm: ArrayLike | None = None,
                      ct_couch: CouchSpec = "auto", treatment_couch: TreatmentCouch | None = TreatmentCouch(),
                      patient_support_angle_deg: float = 0.0) -> FdkCbct:
    """Verification CBCT (int16 HU) of the patient displaced by ``setup_error``, by projections and FDK.

    Parameters as :func:`openigrt.sim.cbct.simulate_cbct`, plus the scan, the physics, the
    patient position (of the plan), the planned isocenter (default: ``isocenter_mm``), where the
    planning CT's couch is (``ct_couch``) and the treatment couch to put under the patient (None:
    none). Same inputs and seed → identical volume.
    """
    planned = np.asarray(isocenter_mm if planned_isocenter_mm is None else planned_isocenter_mm, float)
    grid = cbct_grid(isocenter_mm, params)
    t0 = time.perf_counter()
    _, _, rtk_load = _rtk()
    patient = remove_ct_couch(ct, ct_couch)
    placement, couch_grid = None, None
    if treatment_couch is not None:
        placement = place_treatment_couch(patient, setup_error=setup_error, patient_position=patient_position,
                                          planned_isocenter_mm=planned, initlaseriso_mm=isocenter_mm)
        couch_grid = couch_volume(treatment_couch, placement, length_mm=params.length_mm + 260.0,
                                  spacing_mm=(4.0, 1.0, 20.0))
    geometries = scan_geometries(scan, isocenter_mm=isocenter_mm, patient_position=patient_position,
                                 patient_support_angle_deg=patient_support_angle_deg)
    t1 = time.perf_counter()
    scene = _scene(patient, setup_error, physics, couch_grid)
    beam = _beam(scan, physics)
    rng = np.random.default_rng(seed)
    stack = np.stack([_view(scene, g, beam, physics, rng, scan) for g in geometries])
    t2 = time.perf_counter()
    mu = fdk_reconstruct(stack, geometries, grid, short_scan=scan.fan == "full" and scan.arc < 360.0,
                         displaced_detector=scan.fan == "half", hann_cut=physics.hann_cut)
    t3 = time.perf_counter()
    radius = min(field_of_view_radius_mm(scan), params.fov_diameter_mm / 2)
    hu = 1000.0 * (mu / beam.mu_water_eff - 1.0)
    nz, ny, nx = grid.shape
    c = np.arange(nx) - (nx - 1) / 2
    xx, yy = np.meshgrid(c * params.pixel_mm, c * params.pixel_mm, indexing="xy")
    hu[:, xx**2 + yy**2 > radius**2] = params.fill_value
    out = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return FdkCbct(volume=grid.with_array(out), fov_radius_mm=radius, projections_s=(t2 - t1) + (t1 - t0 - rtk_load),
                   reconstruction_s=t3 - t2, rtk_load_s=rtk_load, couch=placement, hu_mu_water_per_mm=beam.mu_water_eff)
