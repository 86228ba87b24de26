"""X-ray physics shared by the simulated kV images and CBCT projections (SPEC SIM-2, SIM-3).

Tabulated on 5 keV bins centred on 20, 25, … 125 keV (:data:`ENERGIES_KEV`):

* **kV spectra** (:data:`SPECTRA`): tungsten anode, 14° anode angle, 2.7 mm Al inherent
  filtration, photons per bin normalised to 1, and the unfiltered output
  (:data:`FLUENCE_PER_MAS_MM2_AT_1M`, photons mm⁻² mAs⁻¹ at 1 m) — computed with SpekPy 2.5.4
  (Poludniowski et al., Med. Phys. 48:3630, 2021) once and stored here;
* **mass attenuation coefficients** μ/ρ (cm² g⁻¹, :data:`MU_RHO_CM2_G`) of water, ICRU-44
  cortical bone, gold, aluminium, titanium, carbon and CsI — from the Elam/NIST tables through
  xraydb 4.5.8 (weighted by element for the compounds), agreeing with NIST XCOM to < 1 %.

:class:`MaterialDecomposition` splits a planning CT (HU at the CT's effective energy) into three
line-integral channels — water-equivalent density, bone excess and metal — so that a
polyenergetic beam sees ``μ(E) = μ_w(E) (W + k(E) H) + μ_metal(E) f M`` along a ray: lower
energies are absorbed more by bone and metal than the CT numbers say, the spectrum hardens and
the measured attenuation ``−ln(I/I0)`` grows less than linearly with thickness (cupping, dark
streaks between bones, photon starvation behind markers).

:func:`polychromatic_transmission` evaluates the detected (energy-integrating, CsI) signal per
pixel; :func:`scatter_field` is the smooth additive scatter of a thick object (kernel
superposition, amplitude ∝ the primary's attenuation); :func:`heel_profile` the anode heel
effect; :func:`detect` Poisson quantum noise, electronic noise and detector blur.

>>> s = Spectrum.tabulated(125.0)
>>> round(float(s.mean_kev))
56
>>> bool(0.020 < s.effective_mu_per_mm("water", 200.0) < 0.022)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["ENERGIES_KEV", "MU_RHO_CM2_G", "DENSITY_G_CM3", "SPECTRA", "FLUENCE_PER_MAS_MM2_AT_1M", "Spectrum",
           "MaterialDecomposition", "mu_per_mm", "polychromatic_transmission", "scatter_field", "heel_profile",
           "detect", "smooth", "REFERENCE_WATER_MM"]

#: Centres of the 5 keV energy bins (keV).
ENERGIES_KEV = np.arange(20.0, 130.0, 5.0)

#: μ/ρ in cm²/g on :data:`ENERGIES_KEV` (Elam/NIST via xraydb 4.5.8; gold's K edge at 80.7 keV lies
#: between the 80 and 85 keV bins).
MU_RHO_CM2_G: dict[str, NDArray[np.float64]] = {k: np.array(v) for k, v in {
    "water": [0.8098, 0.5082, 0.3756, 0.3075, 0.2683, 0.2436, 0.2269, 0.2149, 0.2059, 0.1987, 0.1929,
              0.1879, 0.1837, 0.1799, 0.1766, 0.1735, 0.1707, 0.1681, 0.1657, 0.1635, 0.1614, 0.1593],
    "bone": [4.001, 2.1582, 1.3311, 0.9061, 0.6655, 0.5189, 0.4242, 0.3601, 0.3148, 0.2818, 0.257,
             0.2379, 0.2229, 0.2108, 0.2008, 0.1925, 0.1855, 0.1795, 0.1743, 0.1697, 0.1656, 0.162],
    "gold": [78.81, 44.108, 27.524, 18.38, 12.981, 9.542, 7.258, 5.667, 4.529, 3.688, 3.054, 2.567,
             2.185, 7.802, 6.743, 5.876, 5.158, 4.558, 4.051, 3.621, 3.252, 2.934],
    "aluminium": [3.4419, 1.8357, 1.1284, 0.7696, 0.5684, 0.4466, 0.3682, 0.3151, 0.2778, 0.2506, 0.2301,
                  0.2143, 0.2018, 0.1917, 0.1833, 0.1764, 0.1704, 0.1653, 0.1608, 0.1569, 0.1533, 0.1502],
    "titanium": [15.8525, 8.3712, 4.9719, 3.2116, 2.2126, 1.6048, 1.2135, 0.9499, 0.766, 0.6338, 0.5361,
                 0.4623, 0.4053, 0.3605, 0.3247, 0.2958, 0.2721, 0.2524, 0.236, 0.2221, 0.2102, 0.1999],
    "carbon": [0.442, 0.3136, 0.2562, 0.2258, 0.2076, 0.1957, 0.1871, 0.1805, 0.1753, 0.171, 0.1672,
               0.164, 0.161, 0.1583, 0.1558, 0.1535, 0.1514, 0.1493, 0.1474, 0.1456, 0.1438, 0.1421],
    "csi": [26.859, 14.713, 9.047, 18.466, 22.97, 16.937, 12.872, 9.997, 7.921, 6.396, 5.248, 4.367,
            3.677, 3.129, 2.688, 2.33, 2.035, 1.791, 1.587, 1.415, 1.269, 1.144],
}.items()}

#: Densities (g/cm³): ICRU-44 cortical bone 1.92, CsI:Tl 4.51.
DENSITY_G_CM3 = {"water": 1.0, "bone": 1.92, "gold": 19.32, "aluminium": 2.699, "titanium": 4.506,
                 "carbon": 1.7, "csi": 4.51}

#: Relative photons per 5 keV bin (sum 1) of a tungsten tube, 14° anode, 2.7 mm Al (SpekPy 2.5.4).
SPECTRA: dict[float, NDArray[np.float64]] = {k: np.array(v) for k, v in {
    80.0: [0.0326, 0.0910, 0.1302, 0.1403, 0.1326, 0.1171, 0.0990, 0.0808, 0.0766, 0.0501, 0.0317,
           0.0157, 0.0022, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    100.0: [0.0213, 0.0641, 0.0975, 0.1103, 0.1090, 0.1006, 0.0895, 0.0777, 0.1116, 0.0662, 0.0470,
            0.0348, 0.0277, 0.0207, 0.0139, 0.0071, 0.0010, 0, 0, 0, 0, 0],
    120.0: [0.0150, 0.0484, 0.0775, 0.0913, 0.0932, 0.0886, 0.0810, 0.0724, 0.1332, 0.0717, 0.0496,
            0.0372, 0.0324, 0.0278, 0.0234, 0.0192, 0.0152, 0.0113, 0.0075, 0.0037, 0.0005, 0],
    125.0: [0.0140, 0.0456, 0.0739, 0.0879, 0.0904, 0.0864, 0.0794, 0.0714, 0.1356, 0.0722, 0.0497,
            0.0373, 0.0328, 0.0285, 0.0244, 0.0205, 0.0168, 0.0133, 0.0099, 0.0065, 0.0033, 0.0004],
    140.0: [0.0113, 0.0386, 0.0647, 0.0790, 0.0829, 0.0806, 0.0751, 0.0685, 0.1465, 0.0744, 0.0498,
            0.0369, 0.0333, 0.0297, 0.0263, 0.0231, 0.0200, 0.0171, 0.0144, 0.0118, 0.0093, 0.0069],
}.items()}
#: Photons per mm² per mAs at 1 m of the same tubes (before any added filter or bow-tie).
FLUENCE_PER_MAS_MM2_AT_1M = {80.0: 1.481e6, 100.0: 2.475e6, 120.0: 3.597e6, 125.0: 3.88e6, 140.0: 4.749e6}

#: Water thickness (mm) at which scatter-to-primary ratios and CBCT HU calibration are defined.
REFERENCE_WATER_MM = 200.0
#: CsI:Tl scintillator thickness of the flat panel (mm).
CSI_THICKNESS_MM = 0.6


def mu_per_mm(material: str, density_g_cm3: float | None = None) -> NDArray[np.float64]:
    """Linear attenuation (mm⁻¹) on :data:`ENERGIES_KEV` of a tabulated material."""
    if material not in MU_RHO_CM2_G:
        raise ValueError(f"unknown material {material!r}; known: {', '.join(MU_RHO_CM2_G)}")
    rho = DENSITY_G_CM3[material] if density_g_cm3 is None else density_g_cm3
    return MU_RHO_CM2_G[material] * rho * 0.1


def detector_weight() -> NDArray[np.float64]:
    """Energy-integrating CsI panel: signal per incident photon ∝ E · (1 − exp(−μ_CsI t))."""
    return ENERGIES_KEV * (1.0 - np.exp(-mu_per_mm("csi") * CSI_THICKNESS_MM))


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Photons per energy bin (relative) of the beam leaving the tube housing."""

    kvp: float
    photons: NDArray[np.float64]

    @classmethod
    def tabulated(cls, kvp: float) -> Spectrum:
        """The stored spectrum of ``kvp`` (one of :data:`SPECTRA`)."""
        key = float(kvp)
        if key not in SPECTRA:
            raise ValueError(f"no tabulated spectrum for {kvp} kVp; available: {sorted(SPECTRA)}")
        return cls(key, SPECTRA[key].copy())

    def filtered(self, material: str, thickness_mm: float) -> Spectrum:
        """The spectrum behind ``thickness_mm`` of ``material``."""
        return Spectrum(self.kvp, self.photons * np.exp(-mu_per_mm(material) * thickness_mm))

    @property
    def mean_kev(self) -> float:
        return float((self.photons * ENERGIES_KEV).sum() / self.photons.sum())

    def effective_mu_per_mm(self, material: str, thickness_mm: float) -> float:
        """``−ln(I/I0) / t`` of the detected signal behind ``thickness_mm`` of ``material``."""
        w = self.photons * detector_weight()
        t = (w * np.exp(-mu_per_mm(material) * thickness_mm)).sum() / w.sum()
        return float(-np.log(t) / thickness_mm)


@dataclass(frozen=True)
class MaterialDecomposition:
    """Planning-CT HU → water / bone / metal line-integral channels (per mm, at unit μ_water).

    * water channel ``W``: ``1 + min(HU, bone_threshold_hu)/1000`` (0 at or below ``air_cutoff_hu``);
    * bone channel ``H``: ``max(HU − bone_threshold_hu, 0)/1000``, attenuating as
      ``μ_w(E) k(E)`` with ``k(E) = (μ_bone/μ_w(E) − 1) / (μ_bone/μ_w(E_CT) − 1)`` (cortical bone
      mixed into water; ``k(E_CT) = 1`` so the CT numbers are reproduced at the CT's effective
      energy);
    * metal channel ``M``: 1 in voxels at or above ``metal_threshold_hu`` (a 12-bit CT saturates
      at 3071 HU on gold markers and implants, so their true density is lost); a saturated voxel
      attenuates as ``metal_fraction`` of gold.

    Parameters
    ----------
    ct_effective_kev
        Effective energy of the planning CT (a 120 kVp CT: ~70 keV).
    """

    bone_threshold_hu: float = 100.0
    metal_threshold_hu: float = 3000.0
    metal_fraction: float = 0.35
    ct_effective_kev: float = 70.0
    air_cutoff_hu: float = -950.0

    def bone_factor(self) -> NDArray[np.float64]:
        """``k(E)`` on :data:`ENERGIES_KEV`."""
        ratio = mu_per_mm("bone") / mu_per_mm("water")
        r_ct = float(np.interp(self.ct_effective_kev, ENERGIES_KEV, ratio))
        return (ratio - 1.0) / (r_ct - 1.0)

    def channels(self, hu: NDArray[np.generic]) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """``(W, H, M)`` float32 arrays of the shape of ``hu``."""
        h = np.ascontiguousarray(hu)
        if h.dtype.kind not in "iuf":
            raise ValueError(f"HU array must be numeric, got {h.dtype}")
        out = np.empty((3, *h.shape), dtype=np.float32)
        _channels(h.reshape(-1), out.reshape(3, -1), self.air_cutoff_hu, self.bone_threshold_hu,
                  self.metal_threshold_hu)
        return out[0], out[1], out[2]

    def channel_mu(self) -> NDArray[np.float64]:
        """``(3, nE)``: μ per mm of unit W, H and M line integral at each energy."""
        mw = mu_per_mm("water")
        return np.stack([mw, mw * self.bone_factor(), mu_per_mm("gold") * self.metal_fraction])


@numba.njit(cache=True, parallel=True)
def _channels(hu: NDArray[np.generic], out: NDArray[np.float32], air: float, bone: float, metal: float) -> None:
    for i in numba.prange(hu.size):
        h = float(hu[i])
        w = 1.0 + min(h, bone) * 1e-3 if h > air else 0.0
        out[0, i] = w if w > 0.0 else 0.0
        out[1, i] = (h - bone) * 1e-3 if h > bone else 0.0
        out[2, i] = 1.0 if h >= metal else 0.0


@numba.njit(cache=True, fastmath=True, parallel=True)
def _transmission(lines: NDArray[np.float32], mu: NDArray[np.float64], weights: NDArray[np.float64],
                  out: NDArray[np.float32]) -> None:
    nch, rows, cols = lines.shape
    ne = mu.shape[1]
    for r in numba.prange(rows):
        for c in range(cols):
            acc = 0.0
            norm = 0.0
            for e in range(ne):
                w = weights[c, e]
                if w == 0.0:
                    continue
                a = 0.0
                for k in range(nch):
                    a += mu[k, e] * lines[k, r, c]
                acc += w * np.exp(-a)
                norm += w
            out[r, c] = acc / norm if norm > 0.0 else 0.0


def polychromatic_transmission(lines: NDArray[np.float32], channel_mu: NDArray[np.float64],
                               column_weights: NDArray[np.float64]) -> NDArray[np.float32]:
    """Detected signal relative to the open field, ``(rows, cols)``.

    ``lines`` ``(C, rows, cols)``: line integrals of the C channels (mm); ``channel_mu`` ``(C, nE)``;
    ``column_weights`` ``(cols, nE)``: detected signal per energy bin of each column's open beam
    (spectrum × bow-tie × detector response).
    """
    out = np.empty(lines.shape[1:], dtype=np.float32)
    _transmission(np.ascontiguousarray(lines, dtype=np.float32), np.ascontiguousarray(channel_mu),
                  np.ascontiguousarray(column_weights), out)
    return out


def scatter_field(transmission: NDArray[np.floating], open_signal: NDArray[np.floating], *,
                  scatter_to_primary: float, reference_attenuation: float, sigma_px: tuple[float, float]
                  ) -> NDArray[np.float64]:
    """Smooth additive scatter (same units as ``open_signal``), by kernel superposition.

    Each pixel scatters ``c · I0 · τ e^{−τ}`` (``τ = −ln T``: a thin object scatters little, a
    thick one absorbs its own scatter) into a Gaussian kernel of width ``sigma_px`` (rows, cols);
    ``c = scatter_to_primary / reference_attenuation`` so that a broad slab of the reference
    thickness (``τ = reference_attenuation``) has that scatter-to-primary ratio.
    """
    from scipy import ndimage

    t = np.clip(np.asarray(transmission, dtype=np.float64), 1e-12, 1.0)
    tau = -np.log(t)
    source = (scatter_to_primary / reference_attenuation) * open_signal * tau * t
    return smooth(source, sigma_px)


def smooth(image: NDArray[np.float64], sigma_px: tuple[float, float]) -> NDArray[np.float64]:
    """Gaussian smoothing (``mode="nearest"``) of a low-frequency field; wide kernels run on a
    block-averaged copy (factor ≤ σ/4) and are linearly upsampled back (error ≪ the field's noise)."""
    from scipy import ndimage

    f = int(max(1, min(sigma_px) // 4))
    rows, cols = image.shape
    if f == 1 or rows < 4 * f or cols < 4 * f:
        return ndimage.gaussian_filter(image, sigma_px, mode="nearest")
    r, c = -(-rows // f) * f, -(-cols // f) * f
    padded = np.pad(image, ((0, r - rows), (0, c - cols)), mode="edge")
    small = padded.reshape(r // f, f, c // f, f).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, (sigma_px[0] / f, sigma_px[1] / f), mode="nearest")
    # block centres sit at (f - 1) / 2 + f * n in full-resolution pixels
    yy = np.clip((np.arange(rows) - (f - 1) / 2) / f, 0, small.shape[0] - 1)
    xx = np.clip((np.arange(cols) - (f - 1) / 2) / f, 0, small.shape[1] - 1)
    return ndimage.map_coordinates(small, np.meshgrid(yy, xx, indexing="ij"), order=1, mode="nearest")


def heel_profile(n: int, pixel_mm: float, sid_mm: float, *, anode_angle_deg: float, self_filtration: float,
                 anode_at_high_index: bool = True) -> NDArray[np.float64]:
    """Relative fluence along the anode–cathode axis (1 on the central ray), length ``n``.

    Photons leaving the target at angle φ towards the anode cross ``d / sin(θ − φ)`` of tungsten
    (θ the anode angle, d the mean production depth): ``I(φ) ∝ exp(−κ (1/sin(θ − φ) − 1/sin θ))``
    with ``κ = μ_W d`` (``self_filtration``).
    """
    x = (np.arange(n) - (n - 1) / 2) * pixel_mm
    phi = np.arctan(x / sid_mm) * (1.0 if anode_at_high_index else -1.0)
    theta = np.deg2rad(anode_angle_deg)
    ang = np.clip(theta - phi, np.deg2rad(0.5), np.pi / 2)
    return np.exp(-self_filtration * (1.0 / np.sin(ang) - 1.0 / np.sin(theta)))


def detect(expected: NDArray[np.floating], rng: np.random.Generator, *, electronic_noise: float,
           blur_sigma_px: float) -> NDArray[np.float64]:
    """Poisson quantum noise on the expected quanta, detector blur (PSF after conversion, so the
    noise is correlated as in a scintillator), additive Gaussian electronic noise (quanta)."""
    from scipy import ndimage

    counts = rng.poisson(np.maximum(np.asarray(expected, dtype=np.float64), 0.0)).astype(np.float64)
    if blur_sigma_px > 0:
        counts = ndimage.gaussian_filter(counts, blur_sigma_px, mode="nearest")
    if electronic_noise > 0:
        counts += rng.normal(0.0, electronic_noise, counts.shape)
    return counts
