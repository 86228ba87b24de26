"""numba's on-disk cache cannot serve stale machine code for our kernels (issue 11: compilation out of the hot path).

numba keys a cached kernel by the content hash of **its own source file** (numba ≥ 0.58), not of
the files its callees live in: a kernel calling a jitted function of another module would keep
running the old callee after that module changed. So every compiled kernel may only call
kernels of its own module (or numpy / numba / builtins). Where the cache lives: next to the
source when writable, else numba's user-wide directory (``~/.cache/numba``, or
``NUMBA_CACHE_DIR``), as for an installed, read-only package.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os

import numba
import pytest
from numba.core.registry import CPUDispatcher

KERNEL_MODULES = ("openigrt.sim.drr", "openigrt.match._kernels")


def _called_names(fn: object) -> set[str]:
    body = ast.parse(inspect.getsource(fn)).body[0].body  # type: ignore[arg-type, attr-defined]  # not the decorator
    return {n.func.id for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


@pytest.mark.parametrize("module_name", KERNEL_MODULES)
def test_kernels_call_only_kernels_of_their_own_file(module_name: str) -> None:
    module = importlib.import_module(module_name)
    kernels = {name: obj for name, obj in vars(module).items() if isinstance(obj, CPUDispatcher)}
    assert kernels, module_name
    for name, kernel in kernels.items():
        assert type(kernel._cache).__name__ == "FunctionCache", f"{module_name}.{name} is compiled on every start"
        for called in _called_names(kernel.py_func):
            target = vars(module).get(called)
            if isinstance(target, CPUDispatcher) or (inspect.isfunction(target) and target.__module__.startswith("openigrt")):
                assert target.__module__ == module_name, (
                    f"{module_name}.{name} calls {called} from {target.__module__}: numba's cache would not "
                    "see that file change")


def test_cache_directory_is_writable() -> None:
    from openigrt.sim import drr

    path = drr._render._cache._cache_path
    os.makedirs(path, exist_ok=True)  # numba creates it on the first save
    assert os.access(path, os.W_OK), path
    assert not numba.config.DISABLE_JIT
