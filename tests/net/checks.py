"""After-the-attack checks of an SCP's directory and service (fuzz campaign, soak test)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from openigrt.net.header import check_structure, inspect, split_part10
from tests.net.data import REAL_CT, dataset_bytes
from tests.net.hostile import CALLING, Target, tree
from tests.net.leanscu import VERIFICATION, ILE, LeanAssociation, PeerClosed, Rejected
from tests.peers import run, storescu

INDEX = {"listen": ("index.sqlite3", "instances", "instances"), "archive": ("index.sqlite", "instance", "objects")}


def lean_echo(t: Target) -> bool:
    """A C-ECHO from our raw-socket requestor; False when refused or lost."""
    try:
        with LeanAssociation(t.port, t.ae_title, CALLING, contexts=[(1, VERIFICATION, (ILE,))], timeout=10) as a:
            return a.echo() == 0
    except (PeerClosed, Rejected, OSError):
        return False


def service_works(t: Target, dcmtk_args: tuple[str, ...] = ()) -> list[str]:
    """DCMTK echoscu and storescu (a real CT) against the target (*dcmtk_args*: e.g. ``+tls ...``); the problems."""
    problems = []
    cp = run(["echoscu", "-aet", CALLING, "-aec", t.ae_title, *dcmtk_args, "127.0.0.1", str(t.port)], timeout=30)
    if cp.returncode != 0:
        problems.append(f"echoscu failed: {cp.stdout[-500:]} {cp.stderr[-500:]}")
    cp = storescu(t.ae_title, t.port, [REAL_CT], calling_ae=CALLING, check=False, extra_args=dcmtk_args)
    if cp.returncode != 0:
        problems.append(f"storescu failed: {cp.stdout[-500:]} {cp.stderr[-500:]}")
    return problems


def stored_consistently(t: Target) -> list[str]:
    """Every file under the target's directory is a complete instance named in its index, and the
    other way round; no temporary or stray file is left. Returns the problems found."""
    db_name, table, sub = INDEX[t.kind]
    problems = []
    files = tree(t.root)
    instance_files = {p for p in files if p.is_relative_to(t.root / sub)}
    for p in instance_files:
        if not p.name.endswith(".dcm"):
            problems.append(f"stray file {p}")
            continue
        try:
            data = p.read_bytes()
            split = split_part10(data, name=str(p))
            check_structure(memoryview(data)[split.dataset_offset:], implicit_vr=split.transfer_syntax_uid == ILE)
        except Exception as exc:  # noqa: BLE001 - any failure is a problem to report
            problems.append(f"incomplete or broken file {p}: {exc}")
    uri = f"file:{t.root / db_name}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as db:
        rows = {str(t.root / r[0]) for r in db.execute(f"SELECT path FROM {table}")}
    on_disk = {str(p) for p in instance_files if p.name.endswith(".dcm")}
    problems += [f"indexed but missing: {p}" for p in sorted(rows - on_disk)]
    problems += [f"file not indexed: {p}" for p in sorted(on_disk - rows)]
    return problems


def outside(t: Target, before: set[Path], workdir: Path) -> list[Path]:
    """Files created under *workdir* since *before* that are neither under the target's root nor its log."""
    return sorted(p for p in tree(workdir) - before if not p.is_relative_to(t.root) and p != t.peer.log_path)


def log_problems(t: Target) -> list[str]:
    return [line for line in t.log().splitlines() if "Traceback" in line or " ERROR " in line]


def real_ct_stored(t: Target) -> bool:
    ts, body = dataset_bytes(REAL_CT)
    uid = inspect(body, transfer_syntax_uid=ts).sop_instance_uid
    db_name, table, _ = INDEX[t.kind]
    with sqlite3.connect(f"file:{t.root / db_name}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table} WHERE sop_instance_uid=?", (uid,)).fetchone()[0] == 1
