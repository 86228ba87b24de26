"""Paths of the real test files (tests/data/real, see PROVENANCE.md) shared by tests/iod and tests/plan."""

from __future__ import annotations

from pathlib import Path

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
ECLIPSE = REAL / "eclipse81_prostate_phantom"
ECLIPSE_RP = ECLIPSE / "RP.1.2.246.352.71.5.2088656855.377401.20110920153647.dcm"
ECLIPSE_RS = ECLIPSE / "RS.1.2.246.352.71.4.2088656855.2404649.20110920153449.dcm"
ECLIPSE_RI = ECLIPSE / "RI.1.2.246.352.71.3.2088656855.2381134.20110921150951.dcm"
ARIA13 = REAL / "aria_ion_plans" / "RN.1.2.246.352.71.5.361940808526.37240.20200311150225.dcm"
ARIA16 = REAL / "aria_ion_plans" / "RN.1.2.246.352.71.5.37402163639.162240.20220929101251.dcm"
ELEKTA_RI = REAL / "pynetdicom_elekta_rtimage" / "RTImageStorage.dcm"
GE_CT = (REAL / "rt_utils_ge_phantom" / "ct_1.dcm", REAL / "rt_utils_ge_phantom" / "ct_2.dcm")
GE_RS = REAL / "rt_utils_ge_phantom" / "rt.dcm"
PYDICOM_PLAN = REAL / "pydicom_rt_fragments" / "rtplan.dcm"
PYDICOM_RS = REAL / "pydicom_rt_fragments" / "rtstruct.dcm"
PYDICOM_CT = REAL / "pydicom_rt_fragments" / "CT_small.dcm"
XML_SAMPLES = REAL / "xml_samples"
