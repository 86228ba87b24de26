"""Configuration (SPEC NET-11): one TOML file, documented defaults, CLI overrides.

The settings are loaded **once** (in the CLI) into frozen dataclasses and passed down; no
module reads configuration on its own. Every key, its type, default and meaning is listed in
:data:`SCHEMA`; :func:`default_toml` renders that table as a commented TOML file
(``openigrt config --defaults``), so the documentation cannot drift from the code.

Overrides come as ``{"section.key": value}`` (from ``--set section.key=value`` or the named
CLI options) and are validated exactly like file values. A bad value raises
:class:`~openigrt.errors.ConfigError` naming the key.

>>> s = load_settings(None, {"local.port": "11112"})
>>> s.local.port, s.local.ae_title
(11112, 'StreamService')
>>> load_settings(None, {"network.dimse_timeout": "-1"})
Traceback (most recent call last):
...
openigrt.errors.ConfigError: config network.dimse_timeout: must be > 0, got -1.0
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openigrt.errors import ConfigError
from openigrt.uids import DEFAULT_UID_ROOT, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, is_valid_uid

DEFAULT_AE_TITLE = "StreamService"
DEFAULT_PORT = 58051
DEFAULT_PRIVATE_CREATOR = "Varian Medical Systems VISION"

# Limits of the node's acceptors (``openigrt listen``, the Storage SCP of ``openigrt move``,
# ``openigrt archive serve``) against broken and hostile peers; all in ``[network]``.
#: Largest A-ASSOCIATE-RQ read (it arrives before any AE title check), bytes.
DEFAULT_MAX_ASSOCIATE_RQ = 65536
#: Largest P-DATA-TF PDU read while ``max_pdu_receive`` is 0 (unlimited, the SPEC default), bytes.
DEFAULT_MAX_PDU_RECEIVE_CAP = 256 * 1024 * 1024
#: Largest DIMSE message (command + data set) reassembled from P-DATA fragments, bytes.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024 * 1024
#: Associations served at the same time (beyond: A-ASSOCIATE-RJ transient, local limit exceeded).
DEFAULT_MAX_ACCEPTED_ASSOCIATIONS = 16
#: Associations served at the same time for one peer address.
DEFAULT_MAX_ASSOCIATIONS_PER_ADDRESS = 8
#: Connections still negotiating (no A-ASSOCIATE-RQ answered yet); beyond, the oldest is dropped.
DEFAULT_MAX_PENDING_CONNECTIONS = 32
#: Connections still negotiating from one peer address; beyond, that address's oldest is dropped.
DEFAULT_MAX_PENDING_PER_ADDRESS = 8
#: Longest an accepted association may last, s.
DEFAULT_MAX_ASSOCIATION_DURATION = 3600.0

_AET_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: 16 chars, no backslash


# --------------------------------------------------------------------------- value objects
@dataclass(frozen=True)
class RemoteAE:
    """A remote application entity (the TMS or another peer)."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, key: str = "remote") -> RemoteAE:
        """Parse ``AET@HOST:PORT``.

        >>> RemoteAE.parse("ORTHANC@127.0.0.1:4242")
        RemoteAE(ae_title='ORTHANC', host='127.0.0.1', port=4242)
        """
        m = re.match(r"^([^@]+)@(.+):(\d+)$", text.strip())
        if not m:
            raise ConfigError(key, f"expected AET@HOST:PORT, got {text!r}")
        return cls(_check_aet(key, m.group(1)), m.group(2), _check_port(key, int(m.group(3))))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


#: Values of ``[remote] protocol``.
PROTOCOL_DIMSE = "dimse"
PROTOCOL_DICOMWEB = "dicomweb"
#: ``--remote`` prefix selecting a DICOMweb TMS: ``dicomweb+http://…`` / ``dicomweb+https://…``.
DICOMWEB_SCHEME_PREFIX = "dicomweb+"


@dataclass(frozen=True)
class DicomWebRemote:
    """The TMS as a DICOMweb service (PS3.18 QIDO-RS, WADO-RS, STOW-RS) at a base URL.

    Timeouts in seconds: *timeout* bounds every wait for progress on one HTTP request (connect,
    sending, each read), *request_timeout* the whole request including its streamed body.
    Credentials are never shown (``repr``/``openigrt config`` mask them).
    """

    url: str
    timeout: float = 60.0
    connect_timeout: float = 10.0
    request_timeout: float = 600.0
    verify_tls: bool = True
    ca_bundle: Path | None = None
    username: str = field(default="", repr=False, metadata={"secret": True})
    password: str = field(default="", repr=False, metadata={"secret": True})
    authorization: str = field(default="", repr=False, metadata={"secret": True})

    def __str__(self) -> str:
        return DICOMWEB_SCHEME_PREFIX + self.url


@dataclass(frozen=True)
class AllowedCaller:
    """A remote AE allowed to open associations to our SCP (NET-9)."""

    ae_title: str
    host: str

    @classmethod
    def parse(cls, text: str, *, key: str = "allow") -> AllowedCaller:
        """Parse ``AET@HOST`` (a trailing ``:PORT`` is accepted and ignored).

        >>> AllowedCaller.parse("STORESCU@127.0.0.1")
        AllowedCaller(ae_title='STORESCU', host='127.0.0.1')
        """
        m = re.match(r"^([^@]+)@([^:]+)(?::\d+)?$", text.strip())
        if not m:
            raise ConfigError(key, f"expected AET@HOST, got {text!r}")
        return cls(_check_aet(key, m.group(1)), m.group(2))


@dataclass(frozen=True)
class LocalSettings:
    """Our own node: one AE title and one listening port for all services."""

    ae_title: str = DEFAULT_AE_TITLE
    port: int = DEFAULT_PORT
    bind_address: str = "0.0.0.0"


@dataclass(frozen=True)
class NetworkSettings:
    """Association parameters (NET-11). Timeouts in seconds; 0 PDU size = unlimited."""

    max_pdu_receive: int = 0
    max_pdu_send: int = 32768
    acse_timeout: float = 300.0
    dimse_timeout: float = 300.0
    network_timeout: float = 300.0
    connect_timeout: float = 30.0
    max_associations: int = 1
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version_name: str = IMPLEMENTATION_VERSION_NAME
    max_associate_rq: int = DEFAULT_MAX_ASSOCIATE_RQ
    max_pdu_receive_cap: int = DEFAULT_MAX_PDU_RECEIVE_CAP
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_accepted_associations: int = DEFAULT_MAX_ACCEPTED_ASSOCIATIONS
    max_associations_per_address: int = DEFAULT_MAX_ASSOCIATIONS_PER_ADDRESS
    max_pending_connections: int = DEFAULT_MAX_PENDING_CONNECTIONS
    max_pending_per_address: int = DEFAULT_MAX_PENDING_PER_ADDRESS
    max_association_duration: float = DEFAULT_MAX_ASSOCIATION_DURATION


@dataclass(frozen=True)
class StorageSettings:
    """Which created objects are stored to the TMS (NET-11, IOD-7)."""

    ihe_ro_2008: bool = False
    store_registrations: bool = True
    store_markers: bool = True
    store_ct_isocenters: bool = True


@dataclass(frozen=True)
class PlanTolerances:
    """Tolerances of the plan precondition checks (SPEC §3) and, ``correction_*``, the couch
    correction per IEC table-top axis above which the review marks a match out of tolerance
    (MATCH-6/7), in mm and degrees."""

    couch_translation_mm: float = 2.0
    isocenter_mm: float = 1.0
    angle_deg: float = 0.2
    orthogonality_deg: float = 0.2
    contour_planarity_mm: float = 1e-6
    ct_xy_mm: float = 0.1
    slice_spacing_uniformity_mm: float = 0.01
    correction_vrt_mm: float = 5.0
    correction_lng_mm: float = 5.0
    correction_lat_mm: float = 5.0
    correction_rtn_deg: float = 3.0
    correction_pitch_deg: float = 3.0
    correction_roll_deg: float = 3.0


@dataclass(frozen=True)
class ReviewSettings:
    """The review workstation in the browser (``openigrt review``, ``--decision web``)."""

    bind_address: str = "127.0.0.1"
    port: int = 0
    allow_remote: bool = False
    decision_timeout_s: float = 3600.0


@dataclass(frozen=True)
class TlsSettings:
    """DICOM TLS (PS3.15 Non-Downgrading BCP 195 profile; :mod:`openigrt.net.tls`).

    *listen* puts TLS on our acceptors (``openigrt listen``, the SCP of ``move``/``session``,
    ``openigrt archive serve``); *remote* on the associations we open to the TMS. The same
    certificate, key and CA bundle serve both roles. Paths are checked to exist when loaded.
    """

    listen: bool = False
    remote: bool = False
    certificate: Path | None = None
    private_key: Path | None = None
    ca_bundle: Path | None = None
    require_client_certificate: bool = True
    verify_hostname: bool = True


@dataclass(frozen=True)
class Settings:
    """All settings, loaded once and passed down."""

    local: LocalSettings = field(default_factory=LocalSettings)
    remote: RemoteAE | None = None
    dicomweb: DicomWebRemote | None = None  # set instead of remote when [remote] protocol = "dicomweb"
    allowed: tuple[AllowedCaller, ...] = ()
    network: NetworkSettings = field(default_factory=NetworkSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    tolerances: PlanTolerances = field(default_factory=PlanTolerances)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    cache_dir: Path = Path("~/.cache/openigrt").expanduser()
    uid_root: str = DEFAULT_UID_ROOT
    private_creator: str = DEFAULT_PRIVATE_CREATOR
    station_name: str = "OPENIGRT"
    manufacturer: str = "OpenIGRT"
    model_name: str = "OpenIGRT virtual imager"

    def allowed_callers(self) -> tuple[AllowedCaller, ...]:
        """Callers accepted by the SCP: the TMS (when configured) plus ``allowed``."""
        extra = (AllowedCaller(self.remote.ae_title, self.remote.host),) if self.remote else ()
        return extra + tuple(a for a in self.allowed if a not in extra)

    def require_remote(self) -> RemoteAE:
        """Return the (DIMSE) TMS or raise a ConfigError saying how to set it."""
        if self.remote is None:
            if self.dicomweb is not None:
                raise ConfigError("remote", f"the TMS is a DICOMweb service ({self.dicomweb}); this needs a DIMSE "
                                  "peer: give --remote AET@HOST:PORT")
            raise ConfigError("remote", "no TMS configured: give --remote AET@HOST:PORT or a [remote] section")
        return self.remote

    @property
    def tms_protocol(self) -> str:
        """``"dicomweb"`` when the TMS is a DICOMweb service, else ``"dimse"``."""
        return PROTOCOL_DICOMWEB if self.dicomweb is not None else PROTOCOL_DIMSE


# --------------------------------------------------------------------------- validators
def _check_aet(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _AET_RE.match(value) or not value.strip():
        raise ConfigError(key, f"expected an AE title of 1-16 printable characters without '\\', got {value!r}")
    return value


def _check_port(key: str, value: Any) -> int:
    v = _as_int(key, value)
    if not 0 <= v <= 65535:
        raise ConfigError(key, f"must be a TCP port 0-65535, got {v}")
    return v


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    try:
        return int(str(value).strip(), 10) if not isinstance(value, int) else value
    except ValueError:
        raise ConfigError(key, f"expected an integer, got {value!r}") from None


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(key, f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected a number, got {value!r}") from None


def _positive_float(key: str, value: Any) -> float:
    v = _as_float(key, value)
    if not v > 0:
        raise ConfigError(key, f"must be > 0, got {v}")
    return v


def _non_negative_float(key: str, value: Any) -> float:
    v = _as_float(key, value)
    if v < 0:
        raise ConfigError(key, f"must be >= 0, got {v}")
    return v


def _pdu(key: str, value: Any) -> int:
    v = _as_int(key, value)
    if v != 0 and not 4096 <= v <= 2**32 - 1:
        raise ConfigError(key, f"must be 0 (unlimited) or 4096..4294967295 bytes, got {v}")
    return v


def _byte_limit(key: str, value: Any) -> int:
    v = _as_int(key, value)
    if v < 4096:
        raise ConfigError(key, f"must be at least 4096 bytes, got {v}")
    return v


def _pdu_limit(key: str, value: Any) -> int:
    v = _byte_limit(key, value)
    if v > 2**32 - 1:
        raise ConfigError(key, f"must fit a PDU length (at most 4294967295 bytes), got {v}")
    return v


def _positive_int(key: str, value: Any) -> int:
    v = _as_int(key, value)
    if v < 1:
        raise ConfigError(key, f"must be >= 1, got {v}")
    return v


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "on", "1"}:
        return True
    if text in {"false", "no", "off", "0"}:
        return False
    raise ConfigError(key, f"expected true or false, got {value!r}")


def _uid(key: str, value: Any) -> str:
    if not isinstance(value, str) or not is_valid_uid(value):
        raise ConfigError(key, f"expected a valid DICOM UID, got {value!r}")
    return value


def _uid_root(key: str, value: Any) -> str:
    v = str(value).rstrip(".")
    if not is_valid_uid(v) or len(v) > 40:
        raise ConfigError(key, f"expected a UID root of at most 40 characters, got {value!r}")
    return v


def _version_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 16:
        raise ConfigError(key, f"expected 1-16 characters, got {value!r}")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"expected a non-empty string, got {value!r}")
    return value


def _path(key: str, value: Any) -> Path:
    return Path(_text(key, str(value))).expanduser()


def _host(key: str, value: Any) -> str:
    v = _text(key, value)
    if any(c.isspace() for c in v):
        raise ConfigError(key, f"expected a host name or IP address, got {value!r}")
    return v


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {value!r}")
    return value


def _optional_path(key: str, value: Any) -> Path | None:
    text = _string(key, str(value) if isinstance(value, Path) else value).strip()
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(key, f"file not found: {path}")
    return path


def _protocol(key: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in (PROTOCOL_DIMSE, PROTOCOL_DICOMWEB):
        raise ConfigError(key, f'expected "{PROTOCOL_DIMSE}" or "{PROTOCOL_DICOMWEB}", got {value!r}')
    return text


def _dicomweb_url(key: str, value: Any) -> str:
    """A DICOMweb base URL: ``http(s)://HOST[:PORT][/PATH]`` (``dicomweb+`` prefix accepted), no credentials."""
    from urllib.parse import urlsplit

    text = _text(key, value).strip()
    if text.lower().startswith(DICOMWEB_SCHEME_PREFIX):
        text = text[len(DICOMWEB_SCHEME_PREFIX):]
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(key, f"not a valid URL {text!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, f"expected http(s)://HOST[:PORT]/PATH, got {value!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(key, "credentials in the URL are not accepted: use remote.username / remote.password "
                          "or remote.authorization")
    if parts.query or parts.fragment or any(c.isspace() for c in text):
        raise ConfigError(key, f"expected a base URL without query, fragment or spaces, got {value!r}")
    del port
    return text.rstrip("/")


@dataclass(frozen=True)
class Key:
    """One configuration key: where it goes, how it is checked, what it means."""

    dotted: str
    convert: Callable[[str, Any], Any]
    default: Any
    doc: str


#: Every scalar key of the configuration file. ``remote`` and ``allowed`` are tables.
SCHEMA: tuple[Key, ...] = (
    Key("local.ae_title", _check_aet, DEFAULT_AE_TITLE, "our AE title, shared by all services"),
    Key("local.port", _check_port, DEFAULT_PORT, "our listening port (Storage SCP, Verification SCP)"),
    Key("local.bind_address", _host, "0.0.0.0", "address the SCP listens on"),
    Key("network.max_pdu_receive", _pdu, 0, "max PDU receive size in bytes, 0 = unlimited"),
    Key("network.max_pdu_send", _pdu, 32768, "max PDU send size in bytes (upper bound; peer's limit applies)"),
    Key("network.acse_timeout", _positive_float, 300.0,
        "association request/release timeout, s (SCP: from the TCP accept to the whole A-ASSOCIATE-RQ)"),
    Key("network.dimse_timeout", _positive_float, 300.0, "DIMSE response timeout, s"),
    Key("network.network_timeout", _positive_float, 300.0,
        "idle network timeout, s (SCP: for each whole PDU, from when it is awaited)"),
    Key("network.connect_timeout", _positive_float, 30.0, "TCP connect timeout, s"),
    Key("network.max_associations", _positive_int, 1, "max simultaneously initiated associations"),
    Key("network.implementation_class_uid", _uid, IMPLEMENTATION_CLASS_UID, "our Implementation Class UID"),
    Key("network.implementation_version_name", _version_name, IMPLEMENTATION_VERSION_NAME,
        "our Implementation Version Name"),
    Key("network.max_associate_rq", _pdu_limit, DEFAULT_MAX_ASSOCIATE_RQ,
        "SCP: largest A-ASSOCIATE-RQ read (before any AE title check), bytes; larger: A-ABORT"),
    Key("network.max_pdu_receive_cap", _pdu_limit, DEFAULT_MAX_PDU_RECEIVE_CAP,
        "SCP: largest P-DATA-TF PDU read while max_pdu_receive is 0 (unlimited), bytes; larger: A-ABORT"),
    Key("network.max_message_size", _byte_limit, DEFAULT_MAX_MESSAGE_SIZE,
        "SCP: largest DIMSE message (command + data set) reassembled, bytes; larger: A-ABORT"),
    Key("network.max_accepted_associations", _positive_int, DEFAULT_MAX_ACCEPTED_ASSOCIATIONS,
        "SCP: associations served at once; beyond: A-ASSOCIATE-RJ 2/3/2 (local limit exceeded)"),
    Key("network.max_associations_per_address", _positive_int, DEFAULT_MAX_ASSOCIATIONS_PER_ADDRESS,
        "SCP: associations served at once for one peer address; beyond: A-ASSOCIATE-RJ 2/3/2"),
    Key("network.max_pending_connections", _positive_int, DEFAULT_MAX_PENDING_CONNECTIONS,
        "SCP: connections not yet associated; a new one beyond this drops the oldest"),
    Key("network.max_pending_per_address", _positive_int, DEFAULT_MAX_PENDING_PER_ADDRESS,
        "SCP: connections not yet associated from one address; beyond: that address's oldest is dropped"),
    Key("network.max_association_duration", _positive_float, DEFAULT_MAX_ASSOCIATION_DURATION,
        "SCP: longest an accepted association may last, s"),
    Key("storage.ihe_ro_2008", _bool, False, "format Spatial Registrations along IHE-RO 2008"),
    Key("storage.store_registrations", _bool, True, "store Spatial Registrations to the TMS"),
    Key("storage.store_markers", _bool, True, "store marker data (structure sets, RT Images with curves)"),
    Key("storage.store_ct_isocenters", _bool, True, "store verification CT and isocenter structure sets"),
    Key("tolerances.couch_translation_mm", _non_negative_float, 2.0, "PLAN-4 couch translation agreement, mm"),
    Key("tolerances.isocenter_mm", _non_negative_float, 1.0, "PLAN-6 isocenter agreement, mm"),
    Key("tolerances.angle_deg", _non_negative_float, 0.2, "PLAN-7 beam vs reference image angles, deg"),
    Key("tolerances.orthogonality_deg", _non_negative_float, 0.2, "PLAN-8 tolerance on the 90 deg pair, deg"),
    Key("tolerances.contour_planarity_mm", _non_negative_float, 1e-6, "PLAN-10 contour z agreement, mm"),
    Key("tolerances.ct_xy_mm", _non_negative_float, 0.1, "PLAN-9 CT slice x/y agreement, mm"),
    Key("tolerances.slice_spacing_uniformity_mm", _non_negative_float, 0.01,
        "PLAN-9 z spacing treated as uniform within, mm"),
    *(Key(f"tolerances.correction_{axis}", _non_negative_float, default,
          f"review: couch correction {axis.split('_')[0]} beyond this is marked out of tolerance, "
          f"{'mm' if axis.endswith('mm') else 'deg'}")
      for axis, default in (("vrt_mm", 5.0), ("lng_mm", 5.0), ("lat_mm", 5.0), ("rtn_deg", 3.0),
                            ("pitch_deg", 3.0), ("roll_deg", 3.0))),
    Key("review.bind_address", _host, "127.0.0.1",
        "address the review web page listens on (a non-loopback one needs review.allow_remote)"),
    Key("review.port", _check_port, 0, "port of the review web page, 0 = any free port"),
    Key("review.allow_remote", _bool, False, "allow binding the review web page to a non-loopback address"),
    Key("review.decision_timeout_s", _positive_float, 3600.0,
        "--decision web: how long the session waits for every match to be decided in the browser, s"),
    Key("tls.listen", _bool, False,
        "DICOM TLS on our acceptors (listen, the SCP of move/session, archive serve); --tls"),
    Key("tls.remote", _bool, False,
        "DICOM TLS on the associations we open: to the TMS (echo, store, find, move), archive: to move destinations; --tls"),
    Key("tls.certificate", _optional_path, "",
        "PEM certificate (chain) we present, server and client role (RSA key for TLS 1.2); --tls-cert"),
    Key("tls.private_key", _optional_path, "", "PEM private key of tls.certificate, unencrypted (keep it private); --tls-key"),
    Key("tls.ca_bundle", _optional_path, "",
        "PEM CA certificates that sign our peers' certificates (empty: the system's, client role only); --tls-ca"),
    Key("tls.require_client_certificate", _bool, True,
        "acceptors: refuse a TLS client without a certificate signed by tls.ca_bundle (mutual TLS)"),
    Key("tls.verify_hostname", _bool, True,
        "requestor: the server certificate must name the host we connect to (DNS or IP subjectAltName)"),
    Key("paths.cache_dir", _path, "~/.cache/openigrt", "cache of received instances and session state"),
    Key("dicom.uid_root", _uid_root, DEFAULT_UID_ROOT, "root of new UIDs (2.25 = UUID-derived)"),
    Key("dicom.private_creator", _text, DEFAULT_PRIVATE_CREATOR,
        "private creator prefix; the group is appended (IOD-8)"),
    Key("dicom.station_name", _text, "OPENIGRT", "Station Name of created images"),
    Key("dicom.manufacturer", _text, "OpenIGRT", "Manufacturer of created images"),
    Key("dicom.model_name", _text, "OpenIGRT virtual imager", "Manufacturer's Model Name of created images"),
)
_BY_KEY = {k.dotted: k for k in SCHEMA}
_TABLE_KEYS = {"remote", "allowed"}

#: Keys of a ``[remote]`` table whose ``protocol`` is ``"dicomweb"`` (``openigrt config --defaults``
#: renders them; ``--set remote.<key>=value`` overrides them).
DICOMWEB_KEYS: tuple[Key, ...] = (
    Key("remote.protocol", _protocol, PROTOCOL_DICOMWEB,
        f'"{PROTOCOL_DIMSE}" (default: ae_title, host, port above) or "{PROTOCOL_DICOMWEB}" (the keys below)'),
    Key("remote.url", _dicomweb_url, "http://127.0.0.1:8042/dicom-web",
        "base URL of the DICOMweb service (http or https; required)"),
    Key("remote.timeout", _positive_float, 60.0,
        "s without progress on one HTTP request (connect, send, each read) before it fails"),
    Key("remote.connect_timeout", _positive_float, 10.0, "TCP (and TLS) connect timeout, s"),
    Key("remote.request_timeout", _positive_float, 600.0, "s for one whole HTTP request, streamed body included"),
    Key("remote.verify_tls", _bool, True, "https: verify the server certificate and host name"),
    Key("remote.ca_bundle", _optional_path, "", "https: PEM file of the CA certificates to trust (empty: certifi's)"),
    Key("remote.username", _string, "", "HTTP basic authentication user name (with password)"),
    Key("remote.password", _string, "", "HTTP basic authentication password (keep the file private)"),
    Key("remote.authorization", _string, "",
        'or the whole Authorization header value, e.g. "Bearer <token>" (not with username)'),
)
_DICOMWEB_NAMES = tuple(k.dotted.split(".", 1)[1] for k in DICOMWEB_KEYS)
_DIMSE_NAMES = ("protocol", "ae_title", "host", "port")


# --------------------------------------------------------------------------- loading
def _flatten(doc: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, body in doc.items():
        if section in _TABLE_KEYS:
            flat[section] = body
            continue
        if not isinstance(body, Mapping):
            raise ConfigError(section, f"unknown top-level key (expected a [section]); known: {_sections()}")
        for key, value in body.items():
            flat[f"{section}.{key}"] = value
    return flat


def _sections() -> str:
    return ", ".join(sorted({k.dotted.split(".")[0] for k in SCHEMA} | _TABLE_KEYS))


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file into a flat ``{"section.key": value}`` mapping."""
    try:
        with open(path, "rb") as fh:
            return _flatten(tomllib.load(fh))
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path}: not valid TOML: {exc}") from None


def _is_dicomweb_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(DICOMWEB_SCHEME_PREFIX)


def _is_dicomweb_table(value: Any) -> bool:
    return isinstance(value, Mapping) and str(value.get("protocol", "")).strip().lower() == PROTOCOL_DICOMWEB


def _remote_table(value: Any) -> dict[str, Any]:
    """*value* (``AET@HOST:PORT``, ``dicomweb+URL``, a table, a RemoteAE/DicomWebRemote) as a table."""
    if value is None:
        return {}
    if _is_dicomweb_text(value):
        return {"protocol": PROTOCOL_DICOMWEB, "url": value}
    if isinstance(value, str):
        value = RemoteAE.parse(value)
    if isinstance(value, RemoteAE):
        return {"ae_title": value.ae_title, "host": value.host, "port": value.port}
    if isinstance(value, DicomWebRemote):
        return {"protocol": PROTOCOL_DICOMWEB, **{k: getattr(value, k) for k in _DICOMWEB_NAMES[1:]}}
    return dict(value) if isinstance(value, Mapping) else value


def _merge_remote(from_file: Any, from_cli: Any, keys: Mapping[str, Any]) -> Any:
    """The ``[remote]`` value after the command line: ``--remote`` replaces the file's TMS, except that a
    ``dicomweb+URL`` over a DICOMweb table only replaces its URL (timeouts, credentials kept); then
    ``--set remote.<key>=value`` overrides single keys."""
    value = from_file
    if from_cli is not None:
        if _is_dicomweb_text(from_cli) and _is_dicomweb_table(from_file):
            value = {**from_file, "url": from_cli}
        else:
            value = from_cli
    if keys:
        value = {**_remote_table(value), **keys}
    return value


def _parse_tms(value: Any) -> tuple[RemoteAE | None, DicomWebRemote | None]:
    """The TMS: (DIMSE remote AE, None) or (None, DICOMweb service) or (None, None)."""
    if value is None:
        return None, None
    if isinstance(value, DicomWebRemote):
        return None, value
    if _is_dicomweb_text(value):
        return None, _parse_dicomweb({"url": value})
    if isinstance(value, Mapping) and _protocol("remote.protocol", value.get("protocol", PROTOCOL_DIMSE)) == PROTOCOL_DICOMWEB:
        return None, _parse_dicomweb(value)
    return _parse_remote(value), None


def _parse_dicomweb(value: Mapping[str, Any]) -> DicomWebRemote:
    unknown = set(value) - set(_DICOMWEB_NAMES)
    if unknown:
        raise ConfigError(f"remote.{sorted(unknown)[0]}",
                          f"unknown key for a DICOMweb TMS (known: {', '.join(_DICOMWEB_NAMES)})")
    if not value.get("url"):
        raise ConfigError("remote.url", "missing (a DICOMweb TMS needs its base URL)")
    values = {spec.dotted.split(".", 1)[1]: spec.convert(spec.dotted, value.get(spec.dotted.split(".", 1)[1],
                                                                               spec.default))
              for spec in DICOMWEB_KEYS[1:]}
    if values["password"] and not values["username"]:
        raise ConfigError("remote.password", "given without remote.username")
    if values["authorization"] and values["username"]:
        raise ConfigError("remote.authorization", "give either remote.authorization or remote.username/password")
    return DicomWebRemote(**values)


def _parse_remote(value: Any) -> RemoteAE | None:
    if value is None:
        return None
    if isinstance(value, RemoteAE):
        return value
    if isinstance(value, str):
        return RemoteAE.parse(value)
    if not isinstance(value, Mapping):
        raise ConfigError("remote", f"expected a table with ae_title, host, port, got {value!r}")
    for k in ("ae_title", "host", "port"):
        if k not in value:
            raise ConfigError(f"remote.{k}", "missing (the TMS needs ae_title, host and port)")
    unknown = set(value) - set(_DIMSE_NAMES)
    if unknown:
        raise ConfigError(f"remote.{sorted(unknown)[0]}", "unknown key (known: protocol, ae_title, host, port; "
                          'protocol = "dicomweb" for a DICOMweb TMS)')
    return RemoteAE(
        _check_aet("remote.ae_title", value["ae_title"]),
        _host("remote.host", value["host"]),
        _check_port("remote.port", value["port"]),
    )


def _parse_allowed(value: Any) -> tuple[AllowedCaller, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for i, item in enumerate(items):
        key = f"allowed[{i}]"
        if isinstance(item, AllowedCaller):
            out.append(item)
        elif isinstance(item, str):
            out.append(AllowedCaller.parse(item, key=key))
        elif isinstance(item, Mapping) and {"ae_title", "host"} <= set(item):
            out.append(AllowedCaller(_check_aet(f"{key}.ae_title", item["ae_title"]), _host(f"{key}.host", item["host"])))
        else:
            raise ConfigError(key, f"expected {{ae_title, host}} or 'AET@HOST', got {item!r}")
    return tuple(out)


def load_settings(path: Path | str | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Load settings from an optional TOML file, then apply *overrides*.

    Parameters
    ----------
    path
        TOML file, or None for defaults only.
    overrides
        ``{"section.key": value}``; ``"remote"`` takes ``AET@HOST:PORT`` and ``"allowed"`` a
        list of ``AET@HOST`` (appended to the file's list).
    """
    flat: dict[str, Any] = read_toml(Path(path)) if path else {}
    overrides = dict(overrides or {})
    extra_allowed = overrides.pop("allowed", None)
    remote_keys = {k.split(".", 1)[1]: overrides.pop(k) for k in list(overrides) if k.startswith("remote.")}
    remote_value = _merge_remote(flat.get("remote"), overrides.pop("remote", None), remote_keys)
    flat.update(overrides)
    values: dict[str, Any] = {}
    for dotted, raw in flat.items():
        if dotted in _TABLE_KEYS:
            continue
        spec = _BY_KEY.get(dotted)
        if spec is None:
            raise ConfigError(dotted, "unknown key; `openigrt config --defaults` lists every key")
        values[dotted] = spec.convert(dotted, raw)
    for spec in SCHEMA:
        values.setdefault(spec.dotted, spec.convert(spec.dotted, spec.default))

    def section(name: str) -> dict[str, Any]:
        return {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(name + ".")}

    allowed = _parse_allowed(flat.get("allowed")) + _parse_allowed(extra_allowed)
    dicom = section("dicom")
    remote, dicomweb = _parse_tms(remote_value)
    return Settings(
        local=LocalSettings(**section("local")),
        remote=remote,
        dicomweb=dicomweb,
        allowed=allowed,
        network=NetworkSettings(**section("network")),
        storage=StorageSettings(**section("storage")),
        tolerances=PlanTolerances(**section("tolerances")),
        review=ReviewSettings(**section("review")),
        tls=TlsSettings(**section("tls")),
        cache_dir=values["paths.cache_dir"],
        uid_root=dicom["uid_root"],
        private_creator=dicom["private_creator"],
        station_name=dicom["station_name"],
        manufacturer=dicom["manufacturer"],
        model_name=dicom["model_name"],
    )


def parse_set_option(text: str) -> tuple[str, str]:
    """Split a ``--set section.key=value`` argument.

    >>> parse_set_option("network.dimse_timeout=30")
    ('network.dimse_timeout', '30')
    """
    if "=" not in text:
        raise ConfigError("--set", f"expected section.key=value, got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip()
    remote_key = key.startswith("remote.") and key.split(".", 1)[1] in set(_DIMSE_NAMES) | set(_DICOMWEB_NAMES)
    if key not in _BY_KEY and key not in _TABLE_KEYS and not remote_key:
        raise ConfigError(key, "unknown key; `openigrt config --defaults` lists every key")
    return key, value.strip()


#: Comment lines rendered above a section by :func:`default_toml`.
_SECTION_NOTES: dict[str, tuple[str, ...]] = {
    "tls": ("DICOM TLS: PS3.15 Non-Downgrading BCP 195 TLS profile. TLS 1.2 or later only; for TLS 1.2 only",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,",
            "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256; TLS 1.3 with OpenSSL's (AEAD) suites. A TLS port takes TLS only.",
            "Make a test CA and certificates: scripts/make-test-certs.sh (docs/tls.md)."),
}


def default_toml() -> str:
    """Render every key with its default and meaning as a commented TOML document."""
    lines = ["# OpenIGRT configuration; every key below shows its default.", ""]
    lines += [
        "# The TMS: Q/R provider, storage destination and an allowed caller (required for network work).",
        "# [remote]",
        '# ae_title = "ORTHANC"',
        '# host = "127.0.0.1"',
        "# port = 4242",
        "",
        "# Or the TMS as a DICOMweb service (PS3.18: QIDO-RS search, WADO-RS retrieve, STOW-RS store), e.g.",
        "# Orthanc's DICOMweb plugin; on the command line --remote dicomweb+http://HOST:PORT/dicom-web (or",
        "# dicomweb+https://...), single keys with --set remote.KEY=VALUE.",
        "# [remote]",
        *[line for spec in DICOMWEB_KEYS
          for line in (f"# # {spec.doc}", f"# {spec.dotted.split('.', 1)[1]} = {_toml_value(spec.default)}")],
        "",
        "# Further callers allowed to store to us (NET-9); repeat the table for each.",
        "# [[allowed]]",
        '# ae_title = "STORESCU"',
        '# host = "127.0.0.1"',
    ]
    current = None
    for spec in SCHEMA:
        sec, key = spec.dotted.split(".", 1)
        if sec != current:
            lines += ["", *(f"# {line}" for line in _SECTION_NOTES.get(sec, ())), f"[{sec}]"]
            current = sec
        lines.append(f"# {spec.doc}")
        lines.append(f"{key} = {_toml_value(spec.default)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
