"""Any CT a user has, as an axial LPS volume for a virtual patient (``openigrt phantom --from-ct PATH``).

* a **directory** or a **DICOM file**: the CT Image Storage slices found there, one series
  (:func:`openigrt.iod.ct_series.read_ct_series`: slices ordered along their normal, HU from the
  rescale, any Image Orientation (Patient)); a gantry-tilted series (slice positions drifting in
  the image plane) is refused;
* an **image file** (``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``, ``.nrrd``, ``.nhdr``) read by
  SimpleITK (:func:`openigrt.sim.ct_file.read_ct_image`, NIfTI's RAS becomes LPS).

Either way the volume is put on an axial grid (:func:`openigrt.sim.ct_file.axial_lps`: exact
reordering of flipped/transposed axes, trilinear resampling of oblique ones), its values must be
a CT's HU (:func:`~openigrt.sim.ct_file.check_ct_values`) and it must be long enough for a
target, organs and markers: at least :data:`MIN_SLICES` slices covering :data:`MIN_LENGTH_MM`.
Every refusal is one message naming the file or directory (DicomInputError for DICOM input,
ImageInputError otherwise).

The built-in patients are named (:data:`BUILT_IN`): ``abdomen`` ships inside the package
(``openigrt/sim/data/abdomen_ct``, Apache-2.0, see its PROVENANCE.md); ``liver`` is the CORT
liver patient the repository's tests carry (``tests/data/real_ct/cort_liver_ct``), found next to
the source tree only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openigrt.errors import DicomInputError, ImageInputError, OpenIGRTError
from openigrt.geometry.volume import Volume
from openigrt.iod.ct_series import read_ct_series
from openigrt.iod.dataset_io import read_paths
from openigrt.sim.ct_file import IMAGE_SUFFIXES, axial_lps, check_ct_values, read_ct_image

__all__ = ["LoadedCT", "load_ct", "built_in_ct", "BUILT_IN", "MIN_SLICES", "MIN_LENGTH_MM"]

#: A CT for a virtual patient has at least this many slices, covering at least this length (mm).
MIN_SLICES = 8
MIN_LENGTH_MM = 60.0
#: Largest drift (mm) of the slice positions in the image plane (a gantry tilt) we accept.
MAX_IN_PLANE_DRIFT_MM = 0.1
_PACKAGE = Path(__file__).resolve().parents[1]
#: Built-in real-anatomy patients: name -> path (relative to the package, or to the source tree).
BUILT_IN = {"abdomen": _PACKAGE / "sim" / "data" / "abdomen_ct" / "example_ct.nii.gz",
            "liver": _PACKAGE.parent / "tests" / "data" / "real_ct" / "cort_liver_ct"}


@dataclass(frozen=True, eq=False)
class LoadedCT:
    """An axial CT volume (float32 HU, LPS, identity direction) and where it came from."""

    volume: Volume
    source: str
    kind: str
    reoriented: str
    patient_position: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        v = self.volume
        return {"path": self.source, "format": self.kind, "reoriented": self.reoriented,
                "scan_patient_position": self.patient_position,
                "grid": {"shape_zyx": list(v.shape), "origin_mm": list(v.origin_mm), "spacing_mm": list(v.spacing_mm)},
                **self.details}


def built_in_ct(name: str) -> Path:
    """The path of a built-in patient's CT; OpenIGRTError when it is not installed."""
    try:
        path = BUILT_IN[name]
    except KeyError:
        raise OpenIGRTError(f"unknown built-in patient {name!r} (known: synthetic, {', '.join(BUILT_IN)})") from None
    if not path.exists():
        raise OpenIGRTError(f"the built-in patient {name!r} needs {path}, which is not installed (the liver CT "
                            "lives in the source tree's tests/data; give it with --from-ct DIR)")
    return path


def _is_image_file(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def _from_dicom(path: Path) -> LoadedCT:
    files, skipped = read_paths([path])
    cts = [f for f in files if str(f.dataset.get("Modality", "")).upper() == "CT"]
    if not cts:
        kinds = sorted({str(f.dataset.get("Modality", "") or "?") for f in files})
        what = f"{len(files)} DICOM file(s), modality {', '.join(kinds)}" if files else "no DICOM file"
        raise DicomInputError(f"{path}: no CT image ({what})" + (f"; {skipped[0]}" if skipped and not files else ""))
    try:
        series = read_ct_series(cts)
    except DicomInputError as exc:
        raise DicomInputError(f"{path}: {exc}") from None
    if series.max_in_plane_offset_mm > MAX_IN_PLANE_DRIFT_MM:
        raise DicomInputError(f"{path}: the slice positions drift {series.max_in_plane_offset_mm:.2f} mm in the image "
                              "plane (a gantry-tilted series); resample it onto an orthogonal grid first")
    re = axial_lps(series.volume)
    details = {"series_instance_uid": series.series_instance_uid, "slices": len(series.slices),
               "resampled_slice_gaps": series.resampled}
    return LoadedCT(re.volume, str(path), "DICOM", re.reoriented, series.patient_position, details)


def _from_image(path: Path) -> LoadedCT:
    re = axial_lps(read_ct_image(path))
    fmt = "NIfTI" if ".nii" in path.name.lower() else "MetaImage" if path.suffix.lower() in (".mha", ".mhd") else "NRRD"
    return LoadedCT(re.volume, str(path), fmt, re.reoriented)


def load_ct(path: Path | str) -> LoadedCT:
    """The CT at *path* (directory, DICOM file or image file) on an axial LPS grid (module docstring)."""
    path = Path(path)
    if not path.exists():
        raise OpenIGRTError(f"{path}: no such file or directory")
    image = path.is_file() and _is_image_file(path)
    loaded = _from_image(path) if image else _from_dicom(path)
    error = ImageInputError if image else DicomInputError
    nz = loaded.volume.shape[0]
    length = (nz - 1) * loaded.volume.spacing_mm[2]
    if nz < MIN_SLICES or length < MIN_LENGTH_MM:
        raise error(f"{path}: {nz} slice(s) covering {length:g} mm; a virtual patient needs a CT of at least "
                    f"{MIN_SLICES} slices and {MIN_LENGTH_MM:g} mm")
    try:
        check_ct_values(loaded.volume, str(path))
    except ImageInputError as exc:
        raise error(str(exc)) from None
    if not np.isfinite(np.asarray(loaded.volume.array)).all():
        raise error(f"{path}: non-finite voxel values")
    return loaded
