"""Real DICOM peers for tests and benchmarks: DCMTK storescp/dcmqrscp, Orthanc, ``openigrt listen``.

Every peer runs on loopback with an ephemeral port, with ``TCP_NODELAY=1`` in its environment
(DCMTK and Orthanc turn Nagle off only then, docs/PEERS.md), from a generated config that allows
loopback only. Every wait is bounded by a timeout and every process is killed by
:meth:`Peer.stop` (fixtures call it in teardown; it is idempotent and escalates SIGTERM → SIGKILL).

Usage::

    with start_storescp(tmp_path / "scp") as scp:          # Peer
        run(["storescu", "-aec", scp.ae_title, "127.0.0.1", str(scp.port), file])

    qr = start_dcmqrscp(tmp_path / "qr", move_destinations={"OPENIGRT": ("127.0.0.1", 11112)})
    orthanc = start_orthanc(tmp_path / "orthanc", modalities={"openigrt": ("OPENIGRT", "127.0.0.1", 11112)})

Only the standard library is used, so benchmarks can import this module too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
_DCMTK_TOOLS = frozenset({"storescu", "storescp", "findscu", "movescu", "echoscu", "dcmqrscp", "dcmsend",
                          "getscu", "dcmdump", "dcmqridx"})
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
ORTHANC_BIN = "/usr/sbin/Orthanc"
#: Orthanc's DICOMweb plugin (Debian ``orthanc-dicomweb``): QIDO-RS, WADO-RS, STOW-RS under ``/dicom-web``.
ORTHANC_DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
ORTHANC_DICOMWEB_ROOT = "/dicom-web/"


#: Where the Debian DCMTK binaries live. pynetdicom installs apps with the *same names*
#: (storescu, storescp, findscu, movescu, echoscu) into the venv, which shadow DCMTK on PATH:
#: always call DCMTK through :func:`dcmtk`.
DCMTK_DIR = Path("/usr/bin")


def dcmtk(name: str) -> str:
    """Absolute path of a DCMTK tool (never the pynetdicom app of the same name)."""
    path = DCMTK_DIR / name
    if path.is_file():
        return str(path)
    venv_bin = Path(sys.executable).parent.resolve()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        cand = Path(d) / name
        if cand.is_file() and cand.parent.resolve() != venv_bin:
            return str(cand)
    return str(path)


def have(program: str) -> bool:
    """True when the DCMTK tool (or an absolute path / Orthanc) exists."""
    return Path(program).is_file() if os.path.isabs(program) else Path(dcmtk(program)).is_file()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, *, timeout: float = START_TIMEOUT, proc: subprocess.Popen | None = None) -> None:
    """Wait until something accepts TCP connections on (host, port); raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:g} s")


def peer_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for peer processes: ours plus TCP_NODELAY=1."""
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Peer:
    """A running peer process. Use as a context manager or call :meth:`stop`."""

    name: str
    proc: subprocess.Popen
    ae_title: str
    port: int
    workdir: Path
    host: str = LOOPBACK
    http_port: int | None = None
    log_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def remote(self) -> str:
        """``AET@HOST:PORT`` for ``--remote``."""
        return f"{self.ae_title}@{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """The peer's log so far (for assertion messages)."""
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def _signal_group(self, sig: int) -> None:
        """Signal the peer's process group (it runs in its own session: forked children too)."""
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, *, sig: int = signal.SIGTERM) -> int | None:
        """Stop the process (and its forked children): *sig*, wait, then SIGKILL; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._signal_group(signal.SIGKILL)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL now (crash simulation); forked children too."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        self._signal_group(signal.SIGKILL)

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(name: str, argv: Sequence[str], workdir: Path, *, env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed by the OS when it exits
    try:
        proc = subprocess.Popen(list(argv), cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(env or peer_env()), start_new_session=True)
    finally:
        log.close()
    return proc, log_path


def _started(peer: Peer, *, timeout: float = START_TIMEOUT) -> Peer:
    try:
        wait_for_port(peer.host, peer.port, timeout=timeout, proc=peer.proc)
    except BaseException:
        peer.stop()
        raise RuntimeError(f"{peer.name} did not start:\n{peer.log()[-3000:]}") from None
    return peer


# --------------------------------------------------------------------------- DCMTK storescp
def start_storescp(workdir: Path, *, ae_title: str = "STORESCP", port: int | None = None,
                   extra_args: Sequence[str] = ()) -> Peer:
    """DCMTK ``storescp`` writing into ``workdir/out`` (accepts any storage class, ILE/ELE)."""
    port = port or free_port()
    out = workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    argv = [dcmtk("storescp"), "--aetitle", ae_title, "--output-directory", str(out), *extra_args, str(port)]
    proc, log = _spawn("storescp", argv, workdir)
    return _started(Peer("storescp", proc, ae_title, port, workdir, log_path=log, extra={"out": out}))


# --------------------------------------------------------------------------- DCMTK dcmqrscp
def write_dcmqrscp_config(path: Path, *, ae_title: str, port: int, storage: Path,
                          move_destinations: Mapping[str, tuple[str, int]], max_pdu: int = 65536) -> None:
    """Generate a dcmqrscp config: one RW storage area; move destinations by AE → (host, port)."""
    hosts = [f"dest{i} = ({aet}, {host}, {p})" for i, (aet, (host, p)) in enumerate(move_destinations.items())]
    text = "\n".join([
        f"NetworkTCPPort  = {port}",
        f"MaxPDUSize      = {max_pdu}",
        "MaxAssociations = 16",
        "",
        "HostTable BEGIN",
        *hosts,
        "HostTable END",
        "",
        "VendorTable BEGIN",
        "VendorTable END",
        "",
        "AETable BEGIN",
        f"{ae_title} {storage} RW (10000, 4096mb) ANY",
        "AETable END",
        "",
    ])
    path.write_text(text)


def start_dcmqrscp(workdir: Path, *, ae_title: str = "QRSCP", port: int | None = None,
                   move_destinations: Mapping[str, tuple[str, int]] | None = None,
                   extra_args: Sequence[str] = ()) -> Peer:
    """DCMTK ``dcmqrscp`` (Study Root FIND/MOVE; fill it with :func:`storescu`)."""
    port = port or free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / "dcmqrscp.cfg"
    write_dcmqrscp_config(config, ae_title=ae_title, port=port, storage=storage,
                          move_destinations=dict(move_destinations or {}))
    # fork mode (the default): DCMTK 3.6.7's --single-process segfaults after the first release
    argv = [dcmtk("dcmqrscp"), "--config", str(config), "--disable-host-lookup", *extra_args, str(port)]
    proc, log = _spawn("dcmqrscp", argv, workdir)
    return _started(Peer("dcmqrscp", proc, ae_title, port, workdir, log_path=log, extra={"storage": storage}))


# --------------------------------------------------------------------------- Orthanc
def start_orthanc(workdir: Path, *, ae_title: str = "ORTHANC", modalities: Mapping[str, tuple[str, str, int]] | None = None,
                  port: int | None = None, http_port: int | None = None, plugins: Sequence[str] = (),
                  extra_config: Mapping[str, Any] | None = None) -> Peer:
    """Orthanc with a generated loopback-only config (docs/PEERS.md), run directly.

    *plugins* are shared-library paths (e.g. :data:`ORTHANC_DICOMWEB_PLUGIN`); with the DICOMweb
    plugin the ``DicomWeb`` section enables QIDO-RS / WADO-RS / STOW-RS under
    :data:`ORTHANC_DICOMWEB_ROOT` on the (loopback-only) HTTP port, and ``peer.extra["dicomweb"]``
    is the base URL. *extra_config* keys are merged into the generated configuration.
    """
    port = port or free_port()
    http_port = http_port or free_port()
    config: dict[str, Any] = {
        "Name": f"openigrt-test-{port}",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "DicomAet": ae_title,
        "DicomPort": port,
        "HttpPort": http_port,
        "HttpServerEnabled": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowMove": False,
        "DicomModalities": {name: [aet, host, p] for name, (aet, host, p) in (modalities or {}).items()},
        "Plugins": list(plugins),
        "StorageCompression": False,
        "SaveJobs": False,
        "ConcurrentJobs": 1,
        "DicomScpTimeout": 30,
        "DicomScuTimeout": 30,
    }
    if ORTHANC_DICOMWEB_PLUGIN in plugins:
        config["DicomWeb"] = {"Enable": True, "Root": ORTHANC_DICOMWEB_ROOT, "EnableWado": False,
                              "Host": LOOPBACK, "Ssl": False}
    config.update(extra_config or {})
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=2))
    proc, log = _spawn("orthanc", [ORTHANC_BIN, str(cfg)], workdir)
    peer = Peer("orthanc", proc, ae_title, port, workdir, http_port=http_port, log_path=log)
    if ORTHANC_DICOMWEB_PLUGIN in plugins:
        peer.extra["dicomweb"] = f"http://{LOOPBACK}:{http_port}{ORTHANC_DICOMWEB_ROOT.rstrip('/')}"
    _started(peer)
    wait_for_http(peer, "/system")
    if ORTHANC_DICOMWEB_PLUGIN in plugins:
        wait_for_http(peer, ORTHANC_DICOMWEB_ROOT + "studies")
    return peer


def wait_for_http(peer: Peer, path: str, *, timeout: float = START_TIMEOUT) -> None:
    """Wait until Orthanc's REST API answers *path*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            orthanc_rest(peer, "GET", path)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    peer.stop()
    raise RuntimeError(f"Orthanc REST not ready after {timeout:g} s:\n{peer.log()[-3000:]}")


def orthanc_rest(peer: Peer, method: str, path: str, body: Any = None, *, timeout: float = 30.0) -> Any:
    """Call Orthanc's REST API on loopback; return the decoded JSON (or raw text)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(f"http://{LOOPBACK}:{peer.http_port}{path}", data=data, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as rsp:
        text = rsp.read()
    try:
        return json.loads(text)
    except ValueError:
        return text.decode(errors="replace")


# --------------------------------------------------------------------------- openigrt listen
def openigrt_argv(*args: str) -> list[str]:
    """Command line running the ``openigrt`` CLI of this interpreter."""
    return [sys.executable, "-c", "import sys; from openigrt.cli import main; sys.exit(main())", *args]


def start_openigrt_listen(workdir: Path, *, ae_title: str = "OPENIGRT", port: int | None = None,
                          cache: Path | None = None, allow: Iterable[str] = (), extra_args: Sequence[str] = (),
                          verbose: bool = True) -> Peer:
    """``openigrt listen`` as a subprocess (its log in ``workdir/openigrt.log``)."""
    port = port or free_port()
    cache = cache or workdir / "cache"
    args = ["listen", "--ae-title", ae_title, "--port", str(port), "--cache", str(cache),
            "--set", "local.bind_address=127.0.0.1", *(["-v"] if verbose else [])]
    for a in allow:
        args += ["--allow", a]
    proc, log = _spawn("openigrt", openigrt_argv(*args, *extra_args), workdir)
    return _started(Peer("openigrt", proc, ae_title, port, workdir, log_path=log, extra={"cache": cache}))


# --------------------------------------------------------------------------- DCMTK clients
def run(argv: Sequence[str], *, timeout: float = 60.0, check: bool = False) -> subprocess.CompletedProcess:
    """Run a program with TCP_NODELAY=1, bounded in time; a bare DCMTK tool name is made absolute."""
    argv = list(argv)
    if argv and not os.path.isabs(argv[0]) and argv[0] in _DCMTK_TOOLS:
        argv[0] = dcmtk(argv[0])
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=peer_env(),
                        stdin=subprocess.DEVNULL)
    if check and cp.returncode != 0:
        raise AssertionError(f"{argv[0]} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    return cp


def storescu(peer_ae: str, port: int, files: Iterable[Path | str], *, calling_ae: str = "STORESCU",
             host: str = LOOPBACK, extra_args: Sequence[str] = (), timeout: float = 60.0,
             check: bool = True) -> subprocess.CompletedProcess:
    """DCMTK ``storescu`` of *files* to (host, port) under *peer_ae*."""
    argv = [dcmtk("storescu"), "-aet", calling_ae, "-aec", peer_ae, *extra_args, host, str(port), *map(str, files)]
    return run(argv, timeout=timeout, check=check)
