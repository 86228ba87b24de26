"""A small seeded synthetic patient for the matching tests (used until/alongside ``openigrt.sim``).

Planning CT: elliptic body, textured soft tissue, a spine-like bone column, two "femoral" bone
cylinders, a lung-like air region, a couch slab and gold fiducials. CBCT: the CT resampled
through a known setup error (reference → verification), plus noise, cupping, HU offset/scale and
a cylindrical field of view padded with a constant value.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume

FIDUCIALS_MM = np.array([[4.3, -6.1, 3.7], [-7.2, 2.4, -5.4], [1.1, 8.3, 9.9]])
PAD_VALUE = -3024.0


def planning_ct(*, shape=(48, 160, 192), spacing=(1.6, 1.6, 2.5), seed=0, fiducials=FIDUCIALS_MM) -> Volume:
    """Seeded phantom CT (HU, float32), array (nz, ny, nx), isocenter at patient (0, 0, 0)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    dx, dy, dz = spacing
    origin = (-(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy, -(nz - 1) / 2 * dz)
    z, y, x = np.meshgrid(origin[2] + dz * np.arange(nz), origin[1] + dy * np.arange(ny),
                          origin[0] + dx * np.arange(nx), indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    body = (x / 140.0) ** 2 + (y / 95.0) ** 2 <= 1.0
    tex = ndimage.gaussian_filter(rng.normal(0, 1, shape), (1.0, 3.0, 3.0))
    hu[body] = 40.0 + 400.0 * tex[body]
    hu[body & ((x / 130.0) ** 2 + (y / 85.0) ** 2 > 1.0)] = -90.0  # fat layer
    hu[((x - 55) / 30.0) ** 2 + ((y + 30) / 28.0) ** 2 + (z / 120.0) ** 2 <= 1.0] = -750.0  # "lung"
    spine = ((x + 5 * np.sin(z / 25.0)) / 14.0) ** 2 + ((y - 55) / 12.0) ** 2 <= 1.0
    hu[spine] = 700.0 + 150.0 * np.cos(z / 4.0)[spine]
    for cx in (-75.0, 80.0):
        femur = ((x - cx) / 13.0) ** 2 + ((y - 10 + 0.3 * z) / 15.0) ** 2 <= 1.0
        hu[femur] = 900.0
    hu[(y > 100) & (y < 112) & (np.abs(x) < 250)] = 200.0  # couch slab
    for f in fiducials:  # ~1 mm x 4 mm gold seeds, partial volume by supersampling
        _add_seed(hu, f, origin, spacing)
    return Volume(hu.astype(np.float32), origin, spacing)


def _add_seed(hu, centre, origin, spacing, length=4.0, radius=0.5, value=12000.0):
    sub = 5
    dx, dy, dz = spacing
    c_idx = (np.asarray(centre) - np.asarray(origin)) / np.asarray(spacing)
    ks = range(int(c_idx[2]) - 3, int(c_idx[2]) + 5)
    js = range(int(c_idx[1]) - 3, int(c_idx[1]) + 5)
    is_ = range(int(c_idx[0]) - 3, int(c_idx[0]) + 5)
    off = (np.arange(sub) + 0.5) / sub - 0.5
    for k in ks:
        for j in js:
            for i in is_:
                zz, yy, xx = np.meshgrid(origin[2] + (k + off) * dz, origin[1] + (j + off) * dy,
                                         origin[0] + (i + off) * dx, indexing="ij")
                inside = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2) & (np.abs(zz - centre[2]) <= length / 2)
                frac = inside.mean()
                if frac > 0:
                    hu[k, j, i] += frac * (value - hu[k, j, i])


def cbct(ct: Volume, truth: RigidTransform, *, seed=1, noise_hu=25.0, offset_hu=-60.0, scale=0.95,
         cupping_hu=80.0, fov_radius_mm=110.0, length_mm=90.0, spacing=(1.0, 1.0, 2.0),
         shape=(44, 220, 220)) -> Volume:
    """Simulated CBCT of *ct* placed by *truth* (reference → verification)."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    origin = (-(nx - 1) / 2 * spacing[0], -(ny - 1) / 2 * spacing[1], -(nz - 1) / 2 * spacing[2])
    img = sitk.GetImageFromArray(ct.array.astype(np.float32))
    img.SetOrigin(ct.origin_mm)
    img.SetSpacing(ct.spacing_mm)
    tx = sitk.AffineTransform(3)
    inv = truth.inverse().matrix  # output (verification) point -> input (reference) point
    tx.SetMatrix(inv[:3, :3].ravel().tolist())
    tx.SetTranslation(inv[:3, 3].tolist())
    ref = sitk.Image(nx, ny, nz, sitk.sitkFloat32)
    ref.SetOrigin(origin)
    ref.SetSpacing(spacing)
    out = sitk.GetArrayFromImage(sitk.Resample(img, ref, tx, sitk.sitkLinear, -1000.0, sitk.sitkFloat32))
    z, y, x = np.meshgrid(origin[2] + spacing[2] * np.arange(nz), origin[1] + spacing[1] * np.arange(ny),
                          origin[0] + spacing[0] * np.arange(nx), indexing="ij")
    r2 = (x**2 + y**2) / fov_radius_mm**2
    out = scale * out + offset_hu - cupping_hu * (1 - r2) + rng.normal(0, noise_hu, out.shape)
    outside = (r2 > 1.0) | (np.abs(z) > length_mm / 2)
    out[outside] = PAD_VALUE
    return Volume(out.astype(np.float32), origin, spacing)
