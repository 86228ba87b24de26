"""CLI start-up benchmark (issue 11: ``openigrt echo`` ≤ 0.4 s wall): OpenIGRT vs DCMTK ``echoscu``, same run.

Commands, run interleaved ``--runs`` times each (medians of wall time and of the process's own
CPU time, user + system, from ``wait4``):

* ``python -c pass`` — the interpreter alone (the floor for any Python CLI);
* ``openigrt --version`` — CLI start-up (click, config, every ``cmd_*`` module);
* ``openigrt echo --remote STORESCP@127.0.0.1:PORT`` — a C-ECHO to DCMTK ``storescp``
  (``TCP_NODELAY=1``), process start to exit;
* DCMTK ``echoscu`` to the same ``storescp``.

The bytecode of ``openigrt`` is compiled first (``compileall``), as in an installed package: with
``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__`` every start would compile the sources.
Import costs per module: ``python -X importtime -c "import openigrt.cli"``.

Usage: ``python benchmarks/cli_bench.py [--runs 15]``; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers import dcmtk, have, peer_env, start_storescp  # noqa: E402

#: Issue 11: ``openigrt echo`` wall time target (s).
TARGET_ECHO_S = 0.4


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the process, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args(argv)
    if not have("storescp"):
        print("DCMTK is not installed (make peers)", file=sys.stderr)
        return 1
    compileall.compile_dir(str(REPO / "openigrt"), quiet=1)
    openigrt = [sys.executable, "-c", "import sys; from openigrt.cli import main; sys.exit(main())"]
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cli_bench_") as tmp, start_storescp(Path(tmp) / "scp") as scp:
        env = peer_env()
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "openigrt --version": [*openigrt, "--version"],
            "openigrt echo": [*openigrt, "echo", "--remote", scp.remote, "--cache", str(Path(tmp) / "cache")],
            "DCMTK echoscu": [dcmtk("echoscu"), "-aec", scp.ae_title, "127.0.0.1", str(scp.port)],
        }
        for argv_ in cases.values():  # warm the page cache
            _run(argv_, env)
        results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, argv_ in cases.items():
                results[name].append(_run(argv_, env))
    load_end = os.getloadavg()[0]
    print(f"CLI start-up {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load {load_start:.2f} -> "
          f"{load_end:.2f}, {args.runs} interleaved runs each")
    print("| command | wall median s | wall min s | CPU median s | exit |\n|---|---|---|---|---|")
    for name, runs in results.items():
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        print(f"| {name} | {statistics.median(walls):.3f} | {min(walls):.3f} | {statistics.median(cpus):.3f} "
              f"| {sorted({r[2] for r in runs})} |")
    echo = statistics.median(r[0] for r in results["openigrt echo"])
    print(f"openigrt echo: {echo:.3f} s (target <= {TARGET_ECHO_S} s): {'met' if echo <= TARGET_ECHO_S else 'NOT met'}")
    return 0 if echo <= TARGET_ECHO_S and all(r[2] == 0 for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
