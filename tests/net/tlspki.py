"""A test PKI made with openssl by ``scripts/make-test-certs.sh`` (the commands docs/tls.md shows).

:func:`make_pki` runs the script once per test session (``pki`` fixture in tests/net/conftest.py);
:class:`Pki` names its files, and gives ``[tls]`` overrides and DCMTK options for each role.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make-test-certs.sh"
#: Bound on the script (six RSA 2048 keys), s.
MAKE_TIMEOUT_S = 120


@dataclass(frozen=True)
class Pki:
    """The files of the test PKI (PEM)."""

    root: Path

    def __getattr__(self, name: str) -> Path:  # pki.ca, pki.server_key, pki.expired_server ...
        path = self.root / (name.removesuffix("_key").replace("_", "-") + (".key" if name.endswith("_key") else ".pem"))
        if not path.is_file():
            raise AttributeError(f"no {path.name} in the test PKI")
        return path

    def acceptor(self, *, cert: str = "server", ca: str = "ca", require_client: bool = True) -> dict[str, str]:
        """``[tls]`` overrides of a TLS acceptor."""
        return {"tls.listen": "true", "tls.certificate": str(self.root / f"{cert}.pem"),
                "tls.private_key": str(self.root / "server.key"), "tls.ca_bundle": str(self.root / f"{ca}.pem"),
                "tls.require_client_certificate": str(require_client).lower()}

    def requestor(self, *, cert: str | None = "client", ca: str = "ca", key: str = "client") -> dict[str, str]:
        """``[tls]`` overrides of a TLS requestor (*cert* None: no client certificate)."""
        out = {"tls.remote": "true", "tls.ca_bundle": str(self.root / f"{ca}.pem")}
        if cert is not None:
            out |= {"tls.certificate": str(self.root / f"{cert}.pem"), "tls.private_key": str(self.root / f"{key}.key")}
        return out

    def dcmtk(self, *, cert: str = "client", key: str = "client", ca: str = "ca") -> list[str]:
        """DCMTK options: ``+tls KEY CERT +cf CA`` (its default profile: Non-downgrading BCP 195)."""
        return ["+tls", str(self.root / f"{key}.key"), str(self.root / f"{cert}.pem"), "+cf", str(self.root / f"{ca}.pem")]

    def cli(self, *, cert: str = "client", key: str = "client", ca: str = "ca") -> list[str]:
        """``openigrt`` options: ``--tls --tls-cert --tls-key --tls-ca``."""
        return ["--tls", "--tls-cert", str(self.root / f"{cert}.pem"), "--tls-key", str(self.root / f"{key}.key"),
                "--tls-ca", str(self.root / f"{ca}.pem")]


def make_pki(root: Path) -> Pki:
    """Run the script into *root* (bounded); raise with its output when it fails."""
    cp = subprocess.run(["sh", str(SCRIPT), str(root)], capture_output=True, text=True, timeout=MAKE_TIMEOUT_S)
    if cp.returncode != 0:
        raise RuntimeError(f"{SCRIPT.name} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    return Pki(root)
