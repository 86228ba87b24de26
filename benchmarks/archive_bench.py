"""Archive benchmark (ARCHIVE-1): the embedded archive vs DCMTK ``dcmqrscp`` as Q/R SCP, same run.

Both providers hold the same synthetic CT (seeded, 512×512 int16, Implicit VR LE) and send into
the same DCMTK ``storescp``; the C-MOVE SCU is DCMTK ``movescu`` in both cases (one association),
so the figures compare the providers only. All DCMTK peers run with ``TCP_NODELAY=1``.

(a) N IMAGE-level C-MOVEs of one UID each (Study/Series UIDs given, as dcmqrscp needs them);
    each C-MOVE opens one association to the destination: the per-move overhead.
(b) one IMAGE-level C-MOVE with the list of N UIDs (one association, N sub-operations).
(c) ingest: DCMTK ``storescu`` of the N files into each provider (one association).

Each figure is the median of ``--runs`` runs; the load average is printed with the figures.

Usage: ``python benchmarks/archive_bench.py [--runs 3] [--slices 200]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers import (  # noqa: E402
    LOOPBACK,
    Peer,
    dcmtk,
    free_port,
    openigrt_argv,
    peer_env,
    start_dcmqrscp,
    start_storescp,
    wait_for_port,
)

CALLING = "BENCHSCU"


def make_ct(out: Path, n: int, *, seed: int = 20261126) -> tuple[str, str, list[str], list[Path]]:
    """Write *n* 512×512 CT slices (Implicit VR LE); return study, series, SOP UIDs and paths."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    root = f"2.25.{rng.integers(10**17, 10**18)}"
    study, series = f"{root}.1", f"{root}.2"
    uids, paths = [], []
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = f"{root}.3.{i + 1}"
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "BENCH^ARCHIVE", "BENCH002"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, f"{root}.4"
        ds.StudyDate, ds.StudyTime, ds.SeriesNumber, ds.InstanceNumber = "20261126", "120000", 1, i + 1
        ds.ImagePositionPatient = [-250.0, -250.0, 2.0 * i]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.9765625, 0.9765625], 2.0
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = rng.integers(0, 2000, (512, 512), dtype=np.int16).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.file_meta = meta
        path = out / f"CT{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        uids.append(ds.SOPInstanceUID)
        paths.append(path)
    return study, series, uids, paths


def query_files(out: Path, study: str, series: str, uids: list[str]) -> list[Path]:
    """One IMAGE-level C-MOVE identifier file per UID (for movescu), plus one with the whole list."""
    from pydicom.dataset import Dataset

    out.mkdir(parents=True, exist_ok=True)

    def write(name: str, sop: str | list[str]) -> Path:
        q = Dataset()
        q.QueryRetrieveLevel = "IMAGE"
        q.StudyInstanceUID, q.SeriesInstanceUID, q.SOPInstanceUID = study, series, sop
        path = out / name
        q.save_as(path, implicit_vr=True, little_endian=True)
        return path

    singles = [write(f"q{i:04d}.dcm", u) for i, u in enumerate(uids)]
    return [*singles, write("list.dcm", uids)]


def run(argv: list[str], *, timeout: float = 900.0) -> float:
    t0 = time.perf_counter()
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=peer_env(), stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if cp.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({cp.returncode}):\n{cp.stdout[-2000:]}\n{cp.stderr[-2000:]}")
    return dt


def start_archive(work: Path, destination: str) -> Peer:
    port = free_port()
    argv = openigrt_argv("archive", "serve", "--dir", str(work / "dir"), "--ae-title", "ARCHIVE", "--port", str(port),
                         "--destination", destination)
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "archive.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=peer_env(),
                                start_new_session=True)
    peer = Peer("archive", proc, "ARCHIVE", port, work, log_path=log_path)
    try:
        wait_for_port(LOOPBACK, port, timeout=30, proc=proc)
    except BaseException:
        peer.stop()
        raise
    return peer


def count(out: Path) -> int:
    return sum(1 for p in out.iterdir() if p.is_file())


def bench_provider(name: str, provider: Peer, scp: Peer, queries: list[Path], files: list[Path],
                   runs: int) -> dict[str, tuple[float, list[float]]]:
    out: Path = scp.extra["out"]
    n = len(files)

    def moves(i: int, list_move: bool) -> float:
        for p in out.iterdir():
            p.unlink()
        q = [queries[-1]] if list_move else queries[:-1]
        dt = run([dcmtk("movescu"), "-S", "-aet", CALLING, "-aec", provider.ae_title, "-aem", scp.ae_title,
                  LOOPBACK, str(provider.port), *map(str, q)])
        got = count(out)
        if got != n:
            raise RuntimeError(f"{name}: {got} files received, expected {n}")
        return dt

    results = {}
    for label, fn in ((f"(a) {n} IMAGE C-MOVEs of one UID, {name}", lambda i: moves(i, False)),
                      (f"(b) one C-MOVE of a {n}-UID list, {name}", lambda i: moves(i, True))):
        values = [fn(i) for i in range(runs)]
        results[label] = (statistics.median(values), values)
        print(f"  {label}: {results[label][0]:.3f} s  runs {[round(v, 3) for v in values]}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--slices", type=int, default=200)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="archive-bench-"))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores", flush=True)
    results: dict[str, tuple[float, list[float]]] = {}
    try:
        study, series, uids, files = make_ct(work / "ct", args.slices)
        queries = query_files(work / "q", study, series, uids)
        with start_storescp(work / "scp") as scp:
            destination = f"{scp.ae_title}@{LOOPBACK}:{scp.port}"
            with start_dcmqrscp(work / "qr", move_destinations={scp.ae_title: (LOOPBACK, scp.port)}) as qr:
                dt = run([dcmtk("storescu"), "-aet", CALLING, "-aec", qr.ae_title, LOOPBACK, str(qr.port), *map(str, files)])
                results[f"(c) storescu {len(files)} slices into dcmqrscp"] = (dt, [dt])
                results.update(bench_provider("dcmqrscp", qr, scp, queries, files, args.runs))
            archive = start_archive(work / "archive", destination)
            try:
                dt = run([dcmtk("storescu"), "-aet", CALLING, "-aec", "ARCHIVE", LOOPBACK, str(archive.port),
                          *map(str, files)])
                results[f"(c) storescu {len(files)} slices into openigrt archive"] = (dt, [dt])
                results.update(bench_provider("openigrt archive", archive, scp, queries, files, args.runs))
            finally:
                archive.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n| what | seconds (median) |\n|---|---|")
    for label, (median, _) in sorted(results.items()):
        print(f"| {label} | {median:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
