"""Run every benchmark in turn (``make bench``); each prints its own same-run comparison table.

The matching benchmark also rewrites its section of ``benchmarks/README.md``; the other scripts
print tables that are pasted into the README by hand with the date, load and command line.
Load matters on a 2-core machine: the machine's 1-minute load average is printed before each
script so that figures taken under load can be recognised.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("net_bench.py", ()),
    ("archive_bench.py", ()),
    ("drr_bench.py", ()),
    ("cbct_bench.py", ()),
    ("iod_bench.py", ()),
    ("plan_bench.py", ()),
    ("cli_bench.py", ()),
    ("demo_bench.py", ()),
    ("match_bench.py", ("--write-readme",)),
    ("match_bench_3d.py", ()),
    ("match_bench_2d.py", ()),
    ("review_bench.py", ()),
)


def main(argv: list[str] | None = None) -> int:
    only = set(argv if argv is not None else sys.argv[1:])
    failed = []
    for script, args in SCRIPTS:
        if only and script.removesuffix(".py") not in only and script not in only:
            continue
        print(f"\n=== {script} {' '.join(args)} (load {os.getloadavg()[0]:.2f}) ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / script), *args], cwd=HERE.parent)
        print(f"=== {script}: exit {rc} in {time.perf_counter() - t0:.0f} s ===", flush=True)
        if rc != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
