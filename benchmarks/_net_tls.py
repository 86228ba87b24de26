"""Part (d) of ``net_bench.py``: receive and send of the CT over DICOM TLS, OpenIGRT vs DCMTK, same run.

Mutual TLS with the certificates of ``scripts/make-test-certs.sh``; DCMTK 3.6.7 with
``+tls KEY CERT +cf CA`` (its default Non-downgrading BCP 195 profile). Every configuration is
measured beside the same pair in plain TCP, all of them once per run in a rotated order
(interleaved), so a load change on the shared machine hits plain and TLS alike. Two figures per
measurement:

* **wall** — receive: DCMTK ``storescu``'s wall time into the receiver (after one untimed C-STORE
  that pays the receiver's lazy imports); send: the sender's wall time, process start included;
* **CPU** — receive: the receiver process's user + system CPU over the transfer
  (``/proc/PID/stat``); send: the whole sender process's CPU (``RUSAGE_CHILDREN``), start-up
  included (until 2026-12-03 the CPU of a C-ECHO by the same program was subtracted; since
  ``openigrt store`` no longer uses pynetdicom and ``openigrt echo`` still does, that difference
  stopped meaning "the C-STOREs"). CPU is far less sensitive to the other jobs than wall time.

The target compares TLS / plain of ours with TLS / plain of DCMTK (medians, and the median of
per-run ratios).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.peers import LOOPBACK, Peer, dcmtk, openigrt_argv, peer_env, start_openigrt_listen, start_storescp, storescu

CALLING = "BENCHSCU"
OUR_AE = "OPENIGRT"
_TICK = os.sysconf("SC_CLK_TCK")
Measure = Callable[[int], tuple[float, float]]  # run index -> (wall s, CPU s)


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def child_cpu(argv: list[str]) -> tuple[float, float, str]:
    """Run *argv* to completion: (wall s, its CPU s, stdout); raise on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=peer_env(), stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cp.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({cp.returncode}):\n{cp.stdout[-2000:]}\n{cp.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, cp.stdout


def _count(d: Path) -> int:
    return sum(1 for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def _slug(name: str) -> str:
    return "".join(c for c in name if c.isalnum())


def _receiver(name: str, start: Callable[[Path, bool], Peer], tls: bool, files: list[Path], work: Path,
              client_args: list[str]) -> Measure:
    def one(i: int) -> tuple[float, float]:
        d = work / f"tls-recv-{_slug(name)}-{i}-{tls}"
        args = client_args if tls else []
        with start(d, tls) as peer:
            storescu(peer.ae_title, peer.port, files[:1], calling_ae=CALLING, extra_args=args)  # warm-up
            cpu0, t0 = proc_cpu(peer.proc.pid), time.perf_counter()
            storescu(peer.ae_title, peer.port, files, calling_ae=CALLING, timeout=600, extra_args=args)
            wall, cpu = time.perf_counter() - t0, proc_cpu(peer.proc.pid) - cpu0
        target = Path(peer.extra.get("out") or peer.extra["cache"])
        n = _count(target / "instances" if "cache" in peer.extra else target)
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        if n != len(files):
            raise RuntimeError(f"{name} (tls={tls}): {n} files received, expected {len(files)}")
        return wall, cpu
    return one


def _sender(name: str, tls: bool, files: list[Path], work: Path, pki: Any) -> Measure:
    server_args = pki.dcmtk(cert="server", key="server")

    def argv(scp: Peer, what: str, d: Path) -> list[str]:
        if name.startswith("DCMTK"):
            tool = "storescu" if what == "store" else "echoscu"
            return [dcmtk(tool), "-aet", CALLING, "-aec", scp.ae_title, *(pki.dcmtk() if tls else []),
                    LOOPBACK, str(scp.port), *(map(str, files) if what == "store" else [])]
        return openigrt_argv(what, "--remote", scp.remote, "--ae-title", CALLING, "--cache", str(d / "cache"),
                             *(pki.cli() if tls else []), *(map(str, files) if what == "store" else []))

    def one(i: int) -> tuple[float, float]:
        d = work / f"tls-send-{_slug(name)}-{i}-{tls}"
        with start_storescp(d, extra_args=server_args if tls else []) as scp:
            wall, cpu, _ = child_cpu(argv(scp, "store", d))
            n = _count(scp.extra["out"])
        shutil.rmtree(d, ignore_errors=True)
        if n != len(files):
            raise RuntimeError(f"{name} (tls={tls}): storescp received {n} files, expected {len(files)}")
        return wall, cpu  # the whole process (start-up included): our echo runs pynetdicom, our store not
    return one


def configurations(files: list[Path], work: Path, pki: Any) -> dict[str, Measure]:
    """``part|program|plain`` / ``part|program|TLS`` -> one measurement."""
    server_args, client_args = pki.dcmtk(cert="server", key="server"), pki.dcmtk()
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None

    def listen(cache_root: Path | None) -> Callable[[Path, bool], Peer]:
        def start(d: Path, tls: bool) -> Peer:
            cache = Path(tempfile.mkdtemp(prefix="openigrt-netbench-", dir=cache_root)) if cache_root else None
            return start_openigrt_listen(d, ae_title=OUR_AE, allow=[f"{CALLING}@127.0.0.1"], verbose=False, cache=cache,
                                         extra_args=pki.cli(cert="server", key="server") if tls else [])
        return start

    receivers: list[tuple[str, Callable[[Path, bool], Peer]]] = [
        ("DCMTK storescp", lambda d, tls: start_storescp(d, extra_args=server_args if tls else [])),
        ("openigrt listen", listen(None))]
    if shm is not None:
        receivers.append(("openigrt listen (cache on tmpfs)", listen(shm)))
    out: dict[str, Measure] = {}
    for name, start in receivers:
        for tls in (False, True):
            out[f"receive|{name}|{'TLS' if tls else 'plain'}"] = _receiver(name, start, tls, files, work, client_args)
    for name in ("DCMTK storescu", "openigrt store"):
        for tls in (False, True):
            out[f"send|{name}|{'TLS' if tls else 'plain'}"] = _sender(name, tls, files, work, pki)
    return out


COMPARED = (("receive", "openigrt listen", "DCMTK storescp"),
            ("receive", "openigrt listen (cache on tmpfs)", "DCMTK storescp"),
            ("send", "openigrt store", "DCMTK storescu"))


def _ratios(values: dict[str, list[float]], prefix: str) -> tuple[float, float]:
    """(TLS / plain of the medians, median of the per-run TLS / plain)."""
    tls, plain = values[f"{prefix}|TLS"], values[f"{prefix}|plain"]
    return (statistics.median(tls) / statistics.median(plain),
            statistics.median(t / p for t, p in zip(tls, plain)))


#: Issue 11 speed targets against the peer in the same run and transport: peer time / our time >= target.
SPEED_TARGETS = (("receive", "openigrt listen", "DCMTK storescp", 0.5),
                 ("receive", "openigrt listen (cache on tmpfs)", "DCMTK storescp", 0.5),
                 ("send", "openigrt store", "DCMTK storescu", 0.5))


def speed_table(wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> list[str]:
    """README rows: our speed relative to the DCMTK peer (peer s / our s) per transport, wall and CPU,
    as the ratio of medians and the median of the per-run ratios (the runs are interleaved)."""
    rows = ["| part | ours vs peer | transport | ours median s (wall / CPU) | peer median s (wall / CPU) | "
            "speed vs peer, wall: medians / per-run | CPU: medians / per-run | target | verdict (wall) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for part, ours, peer, target in SPEED_TARGETS:
        for transport in ("plain", "TLS"):
            a, b = f"{part}|{ours}|{transport}", f"{part}|{peer}|{transport}"
            if a not in wall or b not in wall:
                continue
            r_wall = statistics.median(wall[b]) / statistics.median(wall[a])
            p_wall = statistics.median(p / o for p, o in zip(wall[b], wall[a]))
            r_cpu = statistics.median(cpu[b]) / max(statistics.median(cpu[a]), 1e-9)
            p_cpu = statistics.median(p / max(o, 1e-9) for p, o in zip(cpu[b], cpu[a]))
            verdict = "met" if min(r_wall, p_wall) >= target else "met on one statistic" \
                if max(r_wall, p_wall) >= target else "NOT met"
            rows.append(f"| {part} | {ours} vs {peer} | {transport} | {statistics.median(wall[a]):.3f} / "
                        f"{statistics.median(cpu[a]):.3f} | {statistics.median(wall[b]):.3f} / "
                        f"{statistics.median(cpu[b]):.3f} | {r_wall:.2f}x / {p_wall:.2f}x | {r_cpu:.2f}x / {p_cpu:.2f}x "
                        f"| >= {target}x | {verdict} |")
    return rows


def bench_tls(files: list[Path], work: Path, runs: int) -> dict[str, tuple[float, list[float]]]:
    """Run (d); print every figure and the verdicts; return ``{name [wall|CPU]: (median, runs)}``."""
    from tests.net.tlspki import make_pki

    pki = make_pki(work / "pki")
    configs = configurations(files, work, pki)
    names = list(configs)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            w, c = configs[name](i)
            wall[name].append(w)
            cpu[name].append(c)
        print(f"  (d) run {i + 1}/{runs} done, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    out: dict[str, tuple[float, list[float]]] = {}
    for metric, values in (("wall", wall), ("CPU", cpu)):
        for n, v in values.items():
            out[f"{n} [{metric}]"] = (statistics.median(v), v)
            print(f"  (d) {n} [{metric}]: {statistics.median(v):.3f} s  runs {[round(x, 3) for x in v]}", flush=True)
        for part, ours, theirs in COMPARED:
            if f"{part}|{ours}|TLS" not in values:
                continue
            (m_ours, p_ours), (m_them, p_them) = _ratios(values, f"{part}|{ours}"), _ratios(values, f"{part}|{theirs}")
            verdict = "met" if m_ours <= m_them and p_ours <= p_them else "met on one statistic" \
                if m_ours <= m_them or p_ours <= p_them else "NOT met"
            print(f"  (d) {part} [{metric}] TLS/plain: {ours} {m_ours:.2f} (per-run {p_ours:.2f}) vs {theirs} "
                  f"{m_them:.2f} (per-run {p_them:.2f}) -> {verdict}", flush=True)
    print("\n(d) speed against the DCMTK peer, same run and transport (send CPU: the whole sender process, "
          "start-up included; receive CPU: the receiver process over the transfer)", flush=True)
    print("\n".join(speed_table(wall, cpu)), flush=True)
    return out
