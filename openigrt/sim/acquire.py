"""Simulated kV / MV setup projections with a known setup error (SPEC SIM-3, 2D).

An acquisition images the patient displaced by the setup error ``T`` (a
:class:`~openigrt.geometry.rigid.RigidTransform`, **reference patient mm → verification patient
mm**, the project convention): the machine geometry (a
:class:`~openigrt.geometry.projection.ProjectionGeometry` whose isocenter is the INITLASERISO
point, in verification coordinates) looks at anatomy that sits at ``T(p)``. The noise-free
line integral comes from :class:`~openigrt.sim.drr.DrrRenderer`; then the image is made to differ
from the reference DRR the way a real flat-panel image does:

1. primary fluence ``N_p = N_0 · heel(col) · exp(−∫μ ds)`` (``N_0`` photons per pixel = dose;
   the anode heel effect from the tungsten self-filtration of the anode,
   :func:`~openigrt.sim.xray.heel_profile`: ~10 % less fluence on the anode side of the panel);
2. scatter, a smooth additive field depending on the object's thickness
   (:func:`~openigrt.sim.xray.scatter_field`): every pixel scatters ``∝ N_0 τ e^{−τ}`` into a wide
   Gaussian kernel, scaled so that the scatter-to-primary ratio is ``scatter_to_primary`` behind
   200 mm of water (thicker → more, thinner → less);
3. quantum noise: Poisson counts of ``N_p + S`` (seeded);
4. detector blur (Gaussian PSF, after the noise, so the noise is correlated as in a scintillator);
5. electronic noise (Gaussian, counts);
6. log conversion ``v = ln(N_0 / max(N, 1))`` (bright = attenuating, like a processed kV image;
   no flood correction of the heel, which therefore shows as a gentle gradient) and an intensity
   response ``gain · v^gamma + offset``.

Everything is parameterised by :class:`ImagingParams` (presets :data:`KV_IMAGING`,
:data:`MV_IMAGING`) and a seed; same inputs and seed → identical image.

>>> from openigrt.sim.phantom import make_phantom, PhantomParams
>>> from openigrt.sim.drr import DrrRenderer
>>> from openigrt.geometry.projection import kv_geometry
>>> from openigrt.geometry.rigid import RigidTransform
>>> ph = make_phantom(PhantomParams.small())
>>> g = kv_geometry(0.0, isocenter_mm=ph.isocenter_mm, rows=96, columns=128, pixel_spacing_mm=(3.104, 3.104))
>>> shot = acquire_projection(DrrRenderer(ph.volume), g, setup_error=RigidTransform.identity(), seed=1)
>>> shot.image.shape, shot.image.dtype.name
((96, 128), 'float32')
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from openigrt.geometry.projection import ProjectionGeometry
from openigrt.geometry.rigid import RigidTransform
from openigrt.sim.drr import KV_ATTENUATION, MV_ATTENUATION, AttenuationModel, DrrRenderer
from openigrt.sim.xray import REFERENCE_WATER_MM, detect, heel_profile, scatter_field

__all__ = ["ImagingParams", "KV_IMAGING", "MV_IMAGING", "Projection", "acquire_projection", "degrade"]


@dataclass(frozen=True)
class ImagingParams:
    """How a simulated acquisition differs from the noise-free DRR (all seeded through ``seed``).

    Parameters
    ----------
    attenuation
        HU → μ model of the beam (kV or MV).
    photons_per_pixel
        Unattenuated quanta per pixel ``N_0`` (sets the quantum noise; "dose").
    scatter_to_primary
        Scatter-to-primary ratio behind :data:`~openigrt.sim.xray.REFERENCE_WATER_MM` (200 mm) of
        water; it grows with the object's thickness (kV default 0.3: a panel with an anti-scatter
        grid; without one a pelvis reaches 1–3).
    scatter_sigma_mm
        Gaussian width of the scatter kernel, receptor-plane mm.
    blur_sigma_px
        Detector PSF (Gaussian), pixels.
    electronic_noise
        Standard deviation of additive electronic noise, quanta.
    anode_angle_deg, heel_self_filtration
        Anode heel effect: the target angle and ``κ = μ_W · d`` (tungsten attenuation at the
        beam's mean energy × mean depth of photon production, ~11.5 mm⁻¹ × 3 µm); 0 = no heel.
    heel_anode_at_last_column
        The anode side of the tube is towards the last column (else the first).
    gain, offset, gamma
        Intensity response applied to the log image ``v``: ``gain · v^gamma + offset``.
    """

    attenuation: AttenuationModel = KV_ATTENUATION
    photons_per_pixel: float = 3000.0
    scatter_to_primary: float = 0.3
    scatter_sigma_mm: float = 40.0
    blur_sigma_px: float = 1.0
    electronic_noise: float = 3.0
    anode_angle_deg: float = 14.0
    heel_self_filtration: float = 0.035
    heel_anode_at_last_column: bool = True
    gain: float = 1.0
    offset: float = 0.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.photons_per_pixel <= 0:
            raise ValueError(f"photons_per_pixel must be > 0, got {self.photons_per_pixel}")
        for name in ("scatter_to_primary", "scatter_sigma_mm", "blur_sigma_px", "electronic_noise",
                     "heel_self_filtration"):
            if getattr(self, name) < 0:
                raise ValueError(f"ImagingParams.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.anode_angle_deg < 90:
            raise ValueError(f"ImagingParams.anode_angle_deg must be in (0, 90), got {self.anode_angle_deg}")
        if self.gamma <= 0:
            raise ValueError(f"ImagingParams.gamma must be > 0, got {self.gamma}")

    def with_changes(self, **changes: object) -> ImagingParams:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


#: kV planar image (~100 kVp, flat panel): moderate dose, visible scatter, heel effect.
KV_IMAGING = ImagingParams()
#: MV portal image (6 MV, EPID): low contrast, more blur, no heel effect.
MV_IMAGING = ImagingParams(attenuation=MV_ATTENUATION, photons_per_pixel=800.0, scatter_to_primary=0.1,
                           scatter_sigma_mm=50.0, blur_sigma_px=1.5, electronic_noise=2.0, heel_self_filtration=0.0)


@dataclass(frozen=True, eq=False)
class Projection:
    """One simulated acquisition and its ground truth.

    ``image`` is ``(rows, columns)`` float32, first pixel top-left (RT Image orientation);
    ``line_integral`` the noise-free ``∫μ ds`` of the displaced patient; ``setup_error`` maps
    reference → verification patient mm.
    """

    image: NDArray[np.float32]
    line_integral: NDArray[np.float32]
    geometry: ProjectionGeometry
    setup_error: RigidTransform
    params: ImagingParams
    seed: int


def acquire_projection(renderer: DrrRenderer, geometry: ProjectionGeometry, *, setup_error: RigidTransform,
                       params: ImagingParams = KV_IMAGING, seed: int = 0) -> Projection:
    """Simulate one kV/MV projection of the patient displaced by ``setup_error`` (SPEC SIM-3).

    Parameters
    ----------
    renderer
        The planning CT prepared for DRRs; its attenuation model should match ``params.attenuation``
        (a renderer with another model is re-prepared here).
    geometry
        Imaging geometry in verification patient coordinates (isocenter = INITLASERISO).
    setup_error
        Reference → verification patient mm.
    params
        Degradations (:data:`KV_IMAGING`, :data:`MV_IMAGING` or custom).
    seed
        Seed of the noise generators.
    """
    if renderer.attenuation != params.attenuation:
        renderer = DrrRenderer(renderer.volume, attenuation=params.attenuation)
    line = renderer.render(geometry, setup_error=setup_error)
    image = degrade(line, geometry, params=params, seed=seed)
    return Projection(image=image, line_integral=line, geometry=geometry, setup_error=setup_error,
                      params=params, seed=seed)


def degrade(line_integral: NDArray[np.float32], geometry: ProjectionGeometry, *, params: ImagingParams,
            seed: int) -> NDArray[np.float32]:
    """Steps 1-6 of the module docstring on a line-integral image; returns float32 ``(rows, cols)``."""
    rng = np.random.default_rng(seed)
    rows, cols = line_integral.shape
    n0 = params.photons_per_pixel
    heel = heel_profile(cols, geometry.pixel_spacing_mm[1], geometry.sid_mm, anode_angle_deg=params.anode_angle_deg,
                        self_filtration=params.heel_self_filtration,
                        anode_at_high_index=params.heel_anode_at_last_column)[None, :]
    transmission = np.exp(-line_integral.astype(np.float64))
    expected = n0 * heel * transmission
    if params.scatter_to_primary > 0:
        sigma_px = params.scatter_sigma_mm / np.asarray(geometry.pixel_spacing_mm)
        tau_ref = params.attenuation.mu_water_per_mm * REFERENCE_WATER_MM
        expected = expected + scatter_field(transmission, n0 * heel, scatter_to_primary=params.scatter_to_primary,
                                            reference_attenuation=tau_ref, sigma_px=(float(sigma_px[0]), float(sigma_px[1])))
    counts = detect(expected, rng, electronic_noise=params.electronic_noise, blur_sigma_px=params.blur_sigma_px)
    v = np.log(n0 / np.maximum(counts, 1.0))
    v = np.maximum(v, 0.0) ** params.gamma if params.gamma != 1.0 else v
    return (params.gain * v + params.offset).astype(np.float32)
