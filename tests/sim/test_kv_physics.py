"""kV image physics (sim.acquire.degrade, sim.xray): heel gradient, thickness-dependent scatter,
quantum + electronic noise and blur, polyenergetic attenuation and the material channels."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry.projection import kv_geometry
from openigrt.sim.acquire import KV_IMAGING, degrade
from openigrt.sim.xray import (
    ENERGIES_KEV,
    REFERENCE_WATER_MM,
    MaterialDecomposition,
    Spectrum,
    detector_weight,
    heel_profile,
    mu_per_mm,
    polychromatic_transmission,
    smooth,
)

G = kv_geometry(0.0, rows=192, columns=256, pixel_spacing_mm=(1.552, 1.552))
QUIET = KV_IMAGING.with_changes(photons_per_pixel=1e9, electronic_noise=0.0, blur_sigma_px=0.0)


def _flat(water_mm: float) -> np.ndarray:
    return np.full((G.rows, G.columns), KV_IMAGING.attenuation.mu_water_per_mm * water_mm, np.float32)


def test_heel_effect_darkens_the_anode_side_by_the_physical_amount() -> None:
    img = degrade(_flat(0.0), G, params=QUIET.with_changes(scatter_to_primary=0.0), seed=0)
    cathode, anode = float(img[:, :10].mean()), float(img[:, -10:].mean())
    # v = ln(N0 / N): less fluence on the anode side reads as more attenuation
    assert anode > cathode
    h = heel_profile(G.columns, G.pixel_spacing_mm[1], G.sid_mm, anode_angle_deg=14.0, self_filtration=0.035)
    assert anode - cathode == pytest.approx(np.log(h[:10].mean() / h[-10:].mean()), abs=2e-3)
    assert 0.05 < 1 - h[-1] / h[0] < 0.25  # a 5-25 % heel gradient across a 40 cm panel
    assert h[G.columns // 2 - 1] == pytest.approx(1.0, abs=0.01)
    flat = degrade(_flat(0.0), G, params=QUIET.with_changes(scatter_to_primary=0.0, heel_self_filtration=0.0), seed=0)
    assert float(np.ptp(flat)) < 1e-3


@pytest.mark.parametrize("spr", [0.3, 0.6])
def test_scatter_to_primary_is_the_parameter_at_200_mm_and_grows_with_thickness(spr: float) -> None:
    p = QUIET.with_changes(heel_self_filtration=0.0, scatter_to_primary=spr)
    centre = (slice(80, 112), slice(112, 144))
    for water in (REFERENCE_WATER_MM, 300.0):
        line = _flat(water)
        measured = float(np.exp(-degrade(line, G, params=p, seed=0)[centre].mean()))  # (P + S) / N0
        primary = float(np.exp(-line[0, 0]))
        ratio = measured / primary - 1.0
        assert ratio == pytest.approx(spr * water / REFERENCE_WATER_MM, rel=0.02)


def test_quantum_and_electronic_noise_and_blur() -> None:
    line = _flat(150.0)
    base = KV_IMAGING.with_changes(heel_self_filtration=0.0, blur_sigma_px=0.0, electronic_noise=0.0)
    sd = lambda p: float(np.std(degrade(line, G, params=p, seed=1)[40:150, 40:210]))  # noqa: E731
    quantum = sd(base)
    n = KV_IMAGING.photons_per_pixel * np.exp(-line[0, 0]) * (1 + base.scatter_to_primary * 150 / 200)
    assert quantum == pytest.approx(1 / np.sqrt(n), rel=0.1)  # Poisson: σ(ln N) = 1/√N
    assert sd(base.with_changes(electronic_noise=20.0)) > 1.1 * quantum
    assert sd(base.with_changes(blur_sigma_px=1.0)) < 0.5 * quantum


def test_polychromatic_attenuation_hardens_the_beam() -> None:
    spectrum = Spectrum.tabulated(125.0)
    weights = (spectrum.photons * detector_weight())[None, :]
    dec = MaterialDecomposition()
    thick = np.array([50.0, 100.0, 200.0, 300.0])
    lines = np.zeros((3, 1, thick.size), np.float32)
    lines[0, 0] = thick
    t = polychromatic_transmission(lines, dec.channel_mu(), np.repeat(weights, thick.size, axis=0))[0]
    mu_eff = -np.log(t) / thick
    assert np.all(np.diff(mu_eff) < 0)  # the effective attenuation falls with thickness: beam hardening
    assert mu_eff[-1] == pytest.approx(spectrum.effective_mu_per_mm("water", 300.0), rel=1e-4)
    # bone: at the CT's effective energy the bone channel reproduces the CT numbers (k = 1) ...
    k = dec.bone_factor()
    assert np.interp(dec.ct_effective_kev, ENERGIES_KEV, k) == pytest.approx(1.0)
    # ... and below it bone attenuates more than its HU say (photo-electric effect)
    assert k[0] > 3.0 and k[-1] < 1.0
    w, h, m = dec.channels(np.array([-1000, -500, 0, 40, 1100, 3071], np.int16))
    np.testing.assert_allclose(w, [0.0, 0.5, 1.0, 1.04, 1.1, 1.1], atol=1e-6)
    np.testing.assert_allclose(h, [0, 0, 0, 0, 1.0, 2.971], atol=1e-6)
    np.testing.assert_array_equal(m, [0, 0, 0, 0, 0, 1])
    assert mu_per_mm("gold")[0] > 100 * mu_per_mm("water")[0]


def test_smoothing_a_wide_kernel_on_a_coarse_grid_is_accurate() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.random((192, 256)), 8.0) + np.linspace(0, 1, 256)[None, :]
    exact = ndimage.gaussian_filter(img, (40.0, 40.0), mode="nearest")
    # within 3 % of the field's range (at the borders; ~0.5 % inside): negligible for a scatter field
    assert float(np.abs(smooth(img, (40.0, 40.0)) - exact).max()) < 0.03 * float(np.ptp(exact))
    assert float(np.abs(smooth(img, (40.0, 40.0)) - exact)[40:-40, 40:-40].max()) < 0.01 * float(np.ptp(exact))
