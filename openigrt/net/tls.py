"""DICOM TLS (PS3.15 Annex B, **Non-Downgrading BCP 195 TLS Secure Transport Connection Profile**).

The Python :mod:`ssl` module (OpenSSL) under both our acceptor (:class:`TlsAcceptor`, the
``AcceptorConfig.wrap_socket`` hook of :mod:`openigrt.net.acceptor`) and pynetdicom's requestor
(:class:`ClientTls`, passed as ``AE.associate(tls_args=...)``), and the archive's C-MOVE
sub-association sender (:func:`client_handshake`). What the profile asks and what we do:

* **TLS 1.2 or later only**, no fallback to 1.1/1.0 (:data:`MINIMUM_VERSION`); TLS 1.3 is
  negotiated when both sides have it (OpenSSL's TLS 1.3 suites, all AEAD:
  TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256);
* for TLS 1.2 exactly the profile's four AEAD cipher suites (:data:`TLS12_CIPHER_SUITES`),
  the server choosing (strongest first), no compression, no renegotiation. DHE suites need
  Diffie-Hellman parameters, which we do not load: our server negotiates the ECDHE ones;
* certificates: X.509 from PEM files (``[tls]``), RSA keys for TLS 1.2 interoperability;
  the server's certificate is verified against ``tls.ca_bundle`` and, with
  ``tls.verify_hostname``, must name the host we connect to (DNS or IP subjectAltName);
  with ``tls.require_client_certificate`` our acceptors refuse a client without a certificate
  signed by ``tls.ca_bundle`` (mutual TLS), **at the handshake**.

DCMTK 3.6.7's default profile (``+py``) is the same one; Orthanc 1.10.1 uses DCMTK's
"BCP 195" profile (the same four suites plus TLS_RSA_WITH_AES_128_CBC_SHA for older peers).

Errors become one message naming the peer: :func:`describe_failure` turns an OpenSSL error
into words (expired certificate, unknown CA, host name mismatch, a plain DICOM port, a refused
client certificate).
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Final

from openigrt.config import Settings, TlsSettings
from openigrt.errors import ConfigError, TlsError
from openigrt.net.connections import Connection, TransportRefused

PROFILE: Final = "Non-Downgrading BCP 195 TLS Secure Transport Connection Profile (PS3.15 Annex B)"
MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2
#: The profile's TLS 1.2 cipher suites, IANA name -> OpenSSL name, strongest first (server preference).
TLS12_CIPHER_SUITES: Final = {
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
}
#: First byte of a TLS handshake record (a ClientHello starts with it).
TLS_HANDSHAKE_RECORD: Final = 0x16
#: First byte of an A-ASSOCIATE-RQ PDU (a plain DICOM client on a TLS port).
A_ASSOCIATE_RQ_BYTE: Final = 0x01
#: OpenSSL verification result codes we explain (X509_V_ERR_*); {peer} is "the server" / "the client".
_VERIFY_WORDS: Final = {
    9: "{peer}'s certificate is not valid yet",
    10: "{peer}'s certificate has expired",
    18: "{peer}'s certificate is self-signed and not in tls.ca_bundle",
    19: "{peer}'s certificate chain ends in a CA that is not in tls.ca_bundle",
    20: "{peer}'s certificate is not signed by a CA in tls.ca_bundle",
    21: "{peer}'s certificate is not signed by a CA in tls.ca_bundle",
    26: "{peer}'s certificate is not meant for this role (its extendedKeyUsage)",
    62: "{peer}'s certificate does not name the host we connected to (tls.verify_hostname)",
    64: "{peer}'s certificate does not name the IP address we connected to (tls.verify_hostname)",
}
#: Words for OpenSSL reasons (alerts sent by the peer, record-layer errors), matched in order.
_REASON_WORDS: Final = (
    ("UNKNOWN_CA", "{peer} does not trust the CA that signed our certificate (tls.certificate)"),
    ("CERTIFICATE_REQUIRED", "{peer} requires a certificate from us and we sent none (tls.certificate)"),
    ("CERTIFICATE_EXPIRED", "{peer} says our certificate (tls.certificate) has expired"),
    ("BAD_CERTIFICATE", "{peer} refused our certificate (tls.certificate)"),
    ("UNSUPPORTED_CERTIFICATE", "{peer} refused our certificate for this role (tls.certificate: a server needs "
                                "extendedKeyUsage serverAuth, a client clientAuth)"),
    ("NO_SHARED_CIPHER", "no cipher suite in common (TLS 1.2: only the BCP 195 AEAD suites)"),
    ("HANDSHAKE_FAILURE", "no common TLS version or cipher suite"),
    ("UNSUPPORTED_PROTOCOL", "no common TLS version (we require TLS 1.2 or later)"),
    ("PROTOCOL_VERSION", "no common TLS version (we require TLS 1.2 or later)"),
    ("PEER DID NOT RETURN A CERTIFICATE", "{peer} sent no certificate (tls.require_client_certificate)"),
    ("WRONG_VERSION_NUMBER", "{peer} does not speak TLS (a plain DICOM port?)"),
    ("RECORD_LAYER_FAILURE", "{peer} does not speak TLS (a plain DICOM port?)"),
    ("PACKET_LENGTH_TOO_LONG", "{peer} does not speak TLS (a plain DICOM port?)"),
    ("HTTP_REQUEST", "{peer} does not speak TLS"),
    ("UNEXPECTED_EOF", "{peer} closed the connection during the TLS handshake (a plain DICOM port, or it "
                       "refused our certificate, TLS version or ciphers)"),
    ("EOF OCCURRED", "{peer} closed the connection during the TLS handshake (a plain DICOM port, or it "
                     "refused our certificate, TLS version or ciphers)"),
)


def _cipher_string() -> str:
    return ":".join(TLS12_CIPHER_SUITES.values())


def _base_context(purpose: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = MINIMUM_VERSION
    ctx.set_ciphers(_cipher_string())
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def _load_chain(ctx: ssl.SSLContext, tls: TlsSettings, *, needed: str) -> None:
    if tls.certificate is None or tls.private_key is None:
        if needed:
            missing = "tls.certificate" if tls.certificate is None else "tls.private_key"
            raise ConfigError(missing, f"required {needed} (--tls-cert / --tls-key)")
        return
    try:
        ctx.load_cert_chain(str(tls.certificate), str(tls.private_key))
    except ssl.SSLError as exc:
        raise ConfigError("tls.certificate", f"{tls.certificate} with key {tls.private_key}: not a usable PEM "
                          f"certificate and matching unencrypted private key ({exc.reason or exc})") from None
    except OSError as exc:
        raise ConfigError("tls.certificate", f"cannot read {tls.certificate} / {tls.private_key}: "
                          f"{exc.strerror or exc}") from None


def _load_cas(ctx: ssl.SSLContext, tls: TlsSettings) -> None:
    try:
        ctx.load_verify_locations(cafile=str(tls.ca_bundle))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("tls.ca_bundle", f"{tls.ca_bundle}: not a PEM file of CA certificates "
                          f"({getattr(exc, 'reason', None) or exc})") from None


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """The acceptor's context (raises ConfigError naming the key when a file is missing or unusable)."""
    ctx = _base_context(ssl.PROTOCOL_TLS_SERVER)
    _load_chain(ctx, tls, needed="to accept TLS connections (tls.listen)")
    if tls.require_client_certificate:
        if tls.ca_bundle is None:
            raise ConfigError("tls.ca_bundle", "required to check client certificates "
                              "(tls.require_client_certificate; --tls-ca, or --no-tls-require-client-cert)")
        _load_cas(ctx, tls)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(tls: TlsSettings) -> ssl.SSLContext:
    """The requestor's context: verifies the server against ``tls.ca_bundle`` (or the system's CAs)."""
    ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    ctx.check_hostname = tls.verify_hostname
    if tls.ca_bundle is not None:
        _load_cas(ctx, tls)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.sslsocket_class = _TracedSSLSocket
    _load_chain(ctx, tls, needed="")
    return ctx


# --------------------------------------------------------------------------- error words
def describe_failure(exc: BaseException, peer: str = "the server") -> str:
    """What went wrong in a TLS handshake, in words; *peer* names the other side.

    >>> describe_failure(TimeoutError("timed out"))
    'no TLS handshake within the timeout'
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        words = _VERIFY_WORDS.get(int(exc.verify_code or 0), "{peer}'s certificate was not accepted")
        return f"{words.format(peer=peer)} ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        text = f"{exc.reason or ''} {exc}".upper()
        for key, words in _REASON_WORDS:
            if key in text:
                return f"{words.format(peer=peer)} ({exc.reason or exc})"
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, TimeoutError):
        return "no TLS handshake within the timeout"
    if isinstance(exc, OSError):
        hint = ": a plain DICOM port, or it refused our TLS version, ciphers or certificate" if peer == "the server" else ""
        return f"{peer} closed the connection during the TLS handshake ({exc.strerror or exc}){hint}"
    return str(exc)


# --------------------------------------------------------------------------- acceptor side
@dataclass(frozen=True)
class TlsAcceptor:
    """The acceptor's TLS layer (``AcceptorConfig.wrap_socket``): called in the connection's
    thread with the :class:`~openigrt.net.connections.Connection` and the deadline of its ACSE
    phase (from the accept). Replaces ``conn.sock`` by the TLS socket *before* the handshake, so
    that evicting a pending connection interrupts it; raises :class:`TransportRefused` (one
    log line) when the handshake fails or does not end by the deadline."""

    context: ssl.SSLContext

    def __call__(self, conn: Connection, deadline: float) -> None:
        raw = conn.sock
        first = _peek(raw, deadline)
        if first == A_ASSOCIATE_RQ_BYTE:
            raise TransportRefused("plain (non-TLS) A-ASSOCIATE-RQ on the TLS port; connection closed")
        if first != TLS_HANDSHAKE_RECORD:
            raise TransportRefused(f"not a TLS handshake (first byte 0x{first:02X}) on the TLS port; connection closed")
        tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        conn.sock = tls
        if conn.evicted:
            raise TransportRefused(conn.evicted)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TransportRefused("TLS handshake not completed within the ACSE timeout from the TCP accept")
        tls.settimeout(left)  # one deadline for the whole handshake (ssl's do_handshake)
        try:
            tls.do_handshake()
        except TimeoutError:
            raise TransportRefused("TLS handshake not completed within the ACSE timeout from the TCP accept") from None
        except ssl.SSLCertVerificationError as exc:
            raise TransportRefused(f"client certificate refused: {describe_failure(exc, 'the client')}; "
                                   "connection closed") from None
        except (ssl.SSLError, OSError) as exc:
            raise TransportRefused(f"TLS handshake failed: {conn.evicted or describe_failure(exc, 'the client')}") from None


def _peek(sock: socket.socket, deadline: float) -> int:
    """The first byte the client sent, without consuming it (bounded by *deadline*)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransportRefused("no TLS handshake within the ACSE timeout from the TCP accept")
    sock.settimeout(left)
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        raise TransportRefused("no TLS handshake within the ACSE timeout from the TCP accept") from None
    if not data:
        raise TransportRefused("closed before the TLS handshake")
    return data[0]


def describe_session(sock: socket.socket) -> str:
    """``"TLSv1.3 TLS_AES_256_GCM_SHA384, client CN=..."`` for an established TLS socket ("" for plain)."""
    if not isinstance(sock, ssl.SSLSocket):
        return ""
    cipher = sock.cipher()
    text = f"{sock.version()} {cipher[0] if cipher else '?'}"
    peer = sock.getpeercert()
    if peer:
        subject = ", ".join(f"{k}={v}" for rdn in peer.get("subject", ()) for k, v in rdn)
        text += f", peer certificate {subject}"
    return text


def acceptor_tls(settings: Settings) -> TlsAcceptor | None:
    """The acceptor hook for ``settings.tls.listen`` (None for a plain port); raises ConfigError."""
    return TlsAcceptor(server_context(settings.tls)) if settings.tls.listen else None


def tls_note(tls: TlsSettings) -> str:
    """`` (DICOM TLS, client certificates required)`` for log lines and the CLI."""
    who = "client certificates required" if tls.require_client_certificate else "no client certificate asked"
    return f" (DICOM TLS 1.2+, {who})"


# --------------------------------------------------------------------------- requestor side
class _TracedSSLSocket(ssl.SSLSocket):
    """An SSLSocket that keeps the error of its handshake or first reads (pynetdicom only logs it)."""

    tls_error: BaseException | None = None

    def connect(self, address: Any) -> None:
        try:
            super().connect(address)
        except OSError as exc:
            self.tls_error = exc
            raise

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        try:
            return super().recv(buflen, flags)
        except ssl.SSLError as exc:  # e.g. TLS 1.3: the server refuses our certificate after our Finished
            self.tls_error = self.tls_error or exc
            raise


class _TlsTrace:
    """What pynetdicom gets as the context of ``tls_args``: wraps the socket and remembers it."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.socket: _TracedSSLSocket | None = None

    def wrap_socket(self, sock: socket.socket, server_side: bool = False, server_hostname: str | None = None,
                    **kwargs: Any) -> ssl.SSLSocket:
        wrapped = self.context.wrap_socket(sock, server_side=server_side, server_hostname=server_hostname, **kwargs)
        self.socket = wrapped if isinstance(wrapped, _TracedSSLSocket) else None
        return wrapped

    @property
    def error(self) -> BaseException | None:
        """The TLS error seen, when it was a TLS one (a refused TCP connection is not)."""
        err = self.socket.tls_error if self.socket is not None else None
        if err is None or isinstance(err, ConnectionRefusedError | socket.gaierror):
            return None
        return err


@dataclass(frozen=True)
class ClientTls:
    """The requestor's TLS (built once per client from ``[tls]``): ``tls_args`` for one association."""

    context: ssl.SSLContext

    @classmethod
    def from_settings(cls, tls: TlsSettings) -> ClientTls:
        return cls(client_context(tls))

    def trace(self) -> _TlsTrace:
        return _TlsTrace(self.context)


def failure_message(peer: str, exc: BaseException) -> str:
    """The one-line message for a requestor-side TLS failure with *peer*."""
    return f"TLS with {peer} failed: {describe_failure(exc)}"


def client_handshake(sock: socket.socket, context: ssl.SSLContext, *, host: str, peer: str,
                     timeout: float) -> ssl.SSLSocket:
    """Wrap a connected socket and complete the handshake within *timeout* (raises TlsError naming *peer*)."""
    sock.settimeout(timeout)
    try:
        tls = context.wrap_socket(sock, server_side=False, server_hostname=host, do_handshake_on_connect=False)
        tls.do_handshake()
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise TlsError(failure_message(peer, exc)) from None
    return tls
