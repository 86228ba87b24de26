"""Start-up cost of the CLI (issue 11: ``openigrt echo`` ≤ 0.4 s): what a command imports, not how long.

Every ``openigrt`` run imports :mod:`openigrt.cli` and all ``cmd_*`` modules; a module-level
``import scipy`` (or SimpleITK, numba, matplotlib, ...) anywhere on that path costs every command
0.1-0.5 s. These tests run real commands in a fresh interpreter and check ``sys.modules``
afterwards, so such an import cannot creep back in. The time itself is measured in
``benchmarks/cli_bench.py``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import require_peer
from tests.peers import start_storescp

#: Never needed to start the CLI or to echo a peer: each costs 0.05-0.5 s of imports.
HEAVY_FOR_ECHO = ("scipy", "SimpleITK", "numba", "llvmlite", "matplotlib", "av", "contourpy", "PIL.ImageDraw",
                  "rich.progress", "rich.table", "openigrt.sim", "openigrt.match", "openigrt.plan",
                  "openigrt.workflow", "openigrt.archive", "openigrt.iod")
#: Not needed merely to parse the command line (``--help``, ``--version``, usage errors).
HEAVY_FOR_START = (*HEAVY_FOR_ECHO, "numpy", "pydicom", "pynetdicom", "rich.console", "openigrt.net")

_RUN = """
import json, sys
from openigrt.cli import main
rc = main(sys.argv[1:])
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
sys.exit(rc)
"""


def _modules_after(*args: str) -> tuple[int, str, set[str]]:
    cp = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True, timeout=120,
                        stdin=subprocess.DEVNULL)
    out, _, mods = cp.stdout.rpartition("\nMODULES ")
    assert mods, f"no module list (exit {cp.returncode}):\n{cp.stdout}\n{cp.stderr}"
    return cp.returncode, out + cp.stderr, set(json.loads(mods))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("echo", "--help"), ("demo", "--help")])
def test_parsing_the_command_line_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    rc, out, modules = _modules_after(*args)
    assert rc == 0, out
    assert _loaded(modules, HEAVY_FOR_START) == []


def test_echo_imports_only_the_network_stack(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_peer("storescp")
    with start_storescp(tmp_path / "scp") as peer:
        rc, out, modules = _modules_after("echo", "--remote", peer.remote, "--cache", str(tmp_path / "cache"))
    assert rc == 0 and "C-ECHO" in out and "ok" in out, out
    assert "pynetdicom" in modules  # it did talk DICOM (a later lean requestor may drop this line)
    assert _loaded(modules, HEAVY_FOR_ECHO) == []


def test_echo_failure_still_prints_one_clear_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.peers import free_port

    rc, out, modules = _modules_after("echo", "--remote", f"NOBODY@127.0.0.1:{free_port()}",
                                      "--set", "network.connect_timeout=2", "--cache", str(tmp_path / "cache"))
    assert rc == 1, out
    assert "error" in out and "NOBODY" in out and "Traceback" not in out, out
    assert _loaded(modules, HEAVY_FOR_ECHO) == []
