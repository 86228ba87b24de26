"""Small, valid-enough pydicom datasets for reader and plan-check tests (a phantom "good plan").

Everything is deterministic. The good plan: isocenter (0, 0, 0), HFS, two TREATMENT beams at
gantry 0 and 90, a kV setup pair at 0 and 270 (``KV\\Image``), a CBCT setup beam, each imaging
beam referencing a DRR built by :func:`rt_image`; CT slices of 16x16 pixels 2.5 mm apart; a
structure set with a BODY and one marker on the CT. Tests mutate copies to create defects.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RTImageStorage,
    RTPlanStorage,
    RTStructureSetStorage,
)

from openigrt.iod import private as P

STUDY = "1.2.826.0.1.3680043.10.1.1"
FOR = "1.2.826.0.1.3680043.10.1.2"
CT_SERIES = "1.2.826.0.1.3680043.10.1.3"
RS_UID = "1.2.826.0.1.3680043.10.1.4"
PLAN_UID = "1.2.826.0.1.3680043.10.1.5"
ISO = (0.0, 0.0, 0.0)


def _uid(kind: int, n: int) -> str:
    return f"1.2.826.0.1.3680043.10.{kind}.{n}"


def _base(ds: Dataset, sop_class: str, sop_uid: str, modality: str) -> Dataset:
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientName = "PHANTOM^GOOD"
    ds.PatientID = "P1"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = STUDY
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = sop_uid + ".1"
    ds.SeriesNumber = 0
    ds.Manufacturer = "TEST"
    return ds


def _meta(ds: Dataset, *, implicit: bool = True) -> Dataset:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return ds


def save(ds: Dataset, path: Path, *, implicit: bool = True) -> Path:
    """Write *ds* as a Part 10 file (implicit VR like the vendors, unless told)."""
    _meta(ds, implicit=implicit)
    ds.save_as(path, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return path


# --------------------------------------------------------------------------- CT
def ct_slice(k: int, *, z: float | None = None, rows: int = 16, cols: int = 16, spacing: float = 2.0,
             for_uid: str = FOR, x0: float = -15.0, y0: float = -15.0, series: str = CT_SERIES,
             orientation: Sequence[float] = (1, 0, 0, 0, 1, 0), slope: float = 1.0, intercept: float = -1024.0) -> Dataset:
    """CT slice *k* at z = -10 + 2.5 k (unless *z*), pixels = stored value 1000 + k (so HU = k - 24)."""
    ds = _base(Dataset(), str(CTImageStorage), _uid(2, k + 1), "CT")
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber = k + 1
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = list(orientation)
    zz = -10.0 + 2.5 * k if z is None else z
    ds.ImagePositionPatient = [x0, y0, zz]
    ds.SliceThickness = 2.5
    ds.PixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.PixelData = np.full((rows, cols), 1000 + k, np.int16).tobytes()
    return ds


def ct_series(n: int = 8, **kw: object) -> list[Dataset]:
    return [ct_slice(k, **kw) for k in range(n)]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- structure set
def _ref(cls: str, uid: str) -> Dataset:
    d = Dataset()
    d.ReferencedSOPClassUID = cls
    d.ReferencedSOPInstanceUID = uid
    return d


def structure_set(cts: Sequence[Dataset], *, marker_mm: Sequence[float] = (5.0, 2.0, -1.0),
                  marker_subtype: bool = True) -> Dataset:
    """RS on the CT: ROI 1 BODY (a square per slice), ROI 2 a POINT MARKER (private subtype MARKER)."""
    ds = _base(Dataset(), str(RTStructureSetStorage), RS_UID, "RTSTRUCT")
    ds.StructureSetLabel = "RS"
    ds.StructureSetDate = "20240101"
    ds.StructureSetTime = "120000"
    fr = Dataset()
    fr.FrameOfReferenceUID = FOR
    st = Dataset()
    st.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    st.ReferencedSOPInstanceUID = STUDY
    se = Dataset()
    se.SeriesInstanceUID = CT_SERIES
    se.ContourImageSequence = [_ref(str(CTImageStorage), c.SOPInstanceUID) for c in cts]
    st.RTReferencedSeriesSequence = [se]
    fr.RTReferencedStudySequence = [st]
    ds.ReferencedFrameOfReferenceSequence = [fr]
    rois, contours, obs = [], [], []
    for number, name, kind in ((1, "BODY", "EXTERNAL"), (2, "Marker1", "MARKER")):
        r = Dataset()
        r.ROINumber, r.ReferencedFrameOfReferenceUID, r.ROIName, r.ROIGenerationAlgorithm = number, FOR, name, "MANUAL"
        rois.append(r)
        o = Dataset()
        o.ObservationNumber, o.ReferencedROINumber, o.RTROIInterpretedType, o.ROIInterpreter = number, number, kind, ""
        if kind == "MARKER" and marker_subtype:
            P.write_private(o, P.MARKER_SUBTYPE, "MARKER")
        obs.append(o)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [255, 0, 0]
        rc.ContourSequence = [_body_contour(c, i) for i, c in enumerate(cts)] if kind == "EXTERNAL" else [
            _point_contour(marker_mm)]
        contours.append(rc)
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = rois, contours, obs
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def _body_contour(ct: Dataset, i: int) -> Dataset:
    z = float(ct.ImagePositionPatient[2])
    c = Dataset()
    c.ContourImageSequence = [_ref(str(CTImageStorage), ct.SOPInstanceUID)]
    c.ContourGeometricType = "CLOSED_PLANAR"
    pts = [(-10, -10), (10, -10), (10, 10), (-10, 10)]
    c.NumberOfContourPoints = len(pts)
    c.ContourNumber = i + 1
    c.ContourData = [v for x, y in pts for v in (float(x), float(y), z)]
    return c


def _point_contour(p: Sequence[float]) -> Dataset:
    c = Dataset()
    c.ContourGeometricType = "POINT"
    c.NumberOfContourPoints = 1
    c.ContourNumber = 1
    c.ContourData = [float(v) for v in p]
    return c


# --------------------------------------------------------------------------- RT Image (DRR)
def rt_image(uid: str, *, gantry: float, beam_number: int, rows: int = 32, cols: int = 24,
             isocenter: Sequence[float] = ISO, patient_position: str = "HFS") -> Dataset:
    """A reference DRR with the full PLAN-5 geometry."""
    ds = _base(Dataset(), str(RTImageStorage), uid, "RTIMAGE")
    ds.FrameOfReferenceUID = FOR
    ds.PositionReferenceIndicator = ""
    ds.ImageType = ["DERIVED", "SECONDARY", "DRR"]
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.PatientPosition = patient_position
    ds.RTImageLabel = f"DRR{beam_number}"
    ds.RTImagePlane = "NORMAL"
    ds.ImagePlanePixelSpacing = [0.5, 0.5]
    ds.RTImagePosition = [-(cols - 1) / 4, (rows - 1) / 4]
    ds.RTImageSID = 1500
    ds.RadiationMachineSAD = 1000
    ds.XRayImageReceptorTranslation = [0, 0, -500]
    ds.XRayImageReceptorAngle = 0
    ds.GantryAngle = gantry
    ds.BeamLimitingDeviceAngle = 0
    ds.PatientSupportAngle = 0
    ds.IsocenterPosition = list(isocenter)
    ref = _ref(str(RTPlanStorage), PLAN_UID)
    ds.ReferencedRTPlanSequence = [ref]
    ds.ReferencedBeamNumber = beam_number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 2, -100, "US"
    ds.PixelData = (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols)).tobytes()
    return ds


# --------------------------------------------------------------------------- RT Plan
def _control_points(gantry: float, isocenter: Sequence[float], couch: Sequence[float], energy: float = 6.0,
                    gantry_dir: str = "NONE") -> list[Dataset]:
    cp0 = Dataset()
    cp0.ControlPointIndex = 0
    cp0.NominalBeamEnergy = energy
    cp0.GantryAngle = gantry
    cp0.GantryRotationDirection = gantry_dir
    cp0.BeamLimitingDeviceAngle = 0
    cp0.BeamLimitingDeviceRotationDirection = "NONE"
    cp0.PatientSupportAngle = 0
    cp0.PatientSupportRotationDirection = "NONE"
    cp0.TableTopEccentricAngle = 0
    cp0.TableTopEccentricRotationDirection = "NONE"
    cp0.TableTopVerticalPosition, cp0.TableTopLongitudinalPosition, cp0.TableTopLateralPosition = couch
    cp0.IsocenterPosition = list(isocenter)
    cp0.CumulativeMetersetWeight = 0
    jaw = Dataset()
    jaw.RTBeamLimitingDeviceType = "ASYMX"
    jaw.LeafJawPositions = [-50, 50]
    jaw_y = Dataset()
    jaw_y.RTBeamLimitingDeviceType = "ASYMY"
    jaw_y.LeafJawPositions = [-50, 50]
    cp0.BeamLimitingDevicePositionSequence = [jaw, jaw_y]
    cp1 = Dataset()
    cp1.ControlPointIndex = 1
    cp1.CumulativeMetersetWeight = 1
    return [cp0, cp1]


def beam(number: int, name: str, *, gantry: float, delivery: str = "TREATMENT", imaging: Sequence[str] | None = None,
         isocenter: Sequence[float] = ISO, couch: Sequence[float] = (-150.0, 800.0, 0.0),
         reference_image: str | None = None, beam_type: str = "STATIC") -> Dataset:
    """A beam; *imaging* = device parameter values of one Planned Verification Image item."""
    b = Dataset()
    b.BeamNumber = number
    b.BeamName = name
    b.BeamType = beam_type
    b.RadiationType = "PHOTON"
    b.TreatmentDeliveryType = delivery
    b.TreatmentMachineName = "LINAC"
    b.PrimaryDosimeterUnit = "MU"
    b.SourceAxisDistance = 1000
    lim_x, lim_y = Dataset(), Dataset()
    lim_x.RTBeamLimitingDeviceType, lim_x.NumberOfLeafJawPairs = "ASYMX", 1
    lim_y.RTBeamLimitingDeviceType, lim_y.NumberOfLeafJawPairs = "ASYMY", 1
    b.BeamLimitingDeviceSequence = [lim_x, lim_y]
    b.NumberOfWedges = b.NumberOfCompensators = b.NumberOfBoli = b.NumberOfBlocks = 0
    b.FinalCumulativeMetersetWeight = 1
    b.ControlPointSequence = _control_points(gantry, isocenter, couch)
    b.NumberOfControlPoints = len(b.ControlPointSequence)
    b.ReferencedPatientSetupNumber = 1
    b.ReferencedToleranceTableNumber = 1
    if imaging is not None:
        item = Dataset()
        item.ImagingDeviceSpecificAcquisitionParameters = list(imaging)
        item.ReferencedReferenceImageNumber = 1
        b.PlannedVerificationImageSequence = [item]
    if reference_image is not None:
        ref = _ref(str(RTImageStorage), reference_image)
        ref.ReferenceImageNumber = 1
        b.ReferencedReferenceImageSequence = [ref]
    return b


KV0_DRR, KV270_DRR, TX0_DRR, TX90_DRR = (_uid(4, n) for n in (1, 2, 3, 4))


def good_plan(*, gated: bool = False) -> Dataset:
    """A plan every match type accepts (see the module docstring)."""
    ds = _base(Dataset(), str(RTPlanStorage), PLAN_UID, "RTPLAN")
    ds.FrameOfReferenceUID = FOR
    ds.RTPlanLabel = "GOOD"
    ds.RTPlanName = "GOOD"
    ds.RTPlanDate = "20240101"
    ds.RTPlanTime = "120000"
    ds.RTPlanGeometry = "PATIENT"
    ds.ReferencedStructureSetSequence = [_ref(str(RTStructureSetStorage), RS_UID)]
    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = "HFS"
    if gated:
        motion = Dataset()
        motion.RespiratoryMotionCompensationTechnique = "GATING"
        motion.RespiratorySignalSource = "EXTERNAL_MARKER"
        setup.MotionSynchronizationSequence = [motion]
    ds.PatientSetupSequence = [setup]
    tol = Dataset()
    tol.ToleranceTableNumber = 1
    tol.ToleranceTableLabel = "T1"
    tol.GantryAngleTolerance = 0.5
    ds.ToleranceTableSequence = [tol]
    ds.BeamSequence = [
        beam(1, "TX0", gantry=0, reference_image=TX0_DRR, imaging=["PortImageHighQuality"]),
        beam(2, "TX90", gantry=90, reference_image=TX90_DRR),
        beam(3, "KV0", gantry=0, delivery="SETUP", imaging=["KV", "Image"], reference_image=KV0_DRR),
        beam(4, "KV270", gantry=270, delivery="SETUP", imaging=["KV", "Image"], reference_image=KV270_DRR),
        beam(5, "CBCT", gantry=0, delivery="SETUP", imaging=["KV", "CBCT"]),
    ]
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = 1
    fg.NumberOfBeams = 5
    fg.NumberOfBrachyApplicationSetups = 0
    refs = []
    for n in range(1, 6):
        rb = Dataset()
        rb.ReferencedBeamNumber = n
        if n <= 2:
            rb.BeamMeterset = 100
        refs.append(rb)
    fg.ReferencedBeamSequence = refs
    ds.FractionGroupSequence = [fg]
    ds.ApprovalStatus = "APPROVED"
    return ds


def good_drrs() -> list[Dataset]:
    return [rt_image(TX0_DRR, gantry=0, beam_number=1), rt_image(TX90_DRR, gantry=90, beam_number=2),
            rt_image(KV0_DRR, gantry=0, beam_number=3), rt_image(KV270_DRR, gantry=270, beam_number=4)]


def good_patient() -> dict[str, object]:
    """Plan, structure set, CT slices and DRRs of the good phantom patient (fresh copies)."""
    cts = ct_series()
    return {"plan": good_plan(), "rs": structure_set(cts), "ct": cts, "drrs": good_drrs()}


def clone(ds: Dataset) -> Dataset:
    return copy.deepcopy(ds)


def write_patient(directory: Path, patient: dict[str, object]) -> Path:
    """Save a patient dict as files in *directory* (implicit VR)."""
    directory.mkdir(parents=True, exist_ok=True)
    save(patient["plan"], directory / "RP.dcm")  # type: ignore[arg-type]
    save(patient["rs"], directory / "RS.dcm")  # type: ignore[arg-type]
    for i, c in enumerate(patient["ct"]):  # type: ignore[arg-type]
        save(c, directory / f"CT{i:03d}.dcm")
    for i, d in enumerate(patient["drrs"]):  # type: ignore[arg-type]
        save(d, directory / f"RI{i}.dcm")
    return directory


def registration(matrix: object = None, *, ref_for: str = FOR, ver_for: str = "1.2.826.0.1.3680043.10.1.9") -> Dataset:
    """A minimal Spatial Registration with the Type 1 attributes (reference item + identity item)."""
    from pydicom.uid import SpatialRegistrationStorage

    m = np.eye(4) if matrix is None else np.asarray(matrix, dtype=float)
    ds = _base(Dataset(), str(SpatialRegistrationStorage), _uid(5, 1), "REG")
    ds.FrameOfReferenceUID = ver_for
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = 0
    ds.ContentLabel = "MATCH"
    ds.ContentDate, ds.ContentTime = "20240101", "120000"
    items = []
    for for_uid, mm in ((ref_for, m), (ver_for, np.eye(4))):
        it = Dataset()
        it.FrameOfReferenceUID = for_uid
        mr = Dataset()
        mat = Dataset()
        mat.FrameOfReferenceTransformationMatrix = [float(v) for v in mm.ravel()]
        mat.FrameOfReferenceTransformationMatrixType = "RIGID"
        mr.MatrixSequence = [mat]
        it.MatrixRegistrationSequence = [mr]
        items.append(it)
    ds.RegistrationSequence = items
    return ds
