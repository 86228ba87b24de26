"""The OpenIGRT exception tree, and nothing else.

"The peer said no" (a DIMSE status) is *data*, returned as a value; "we could not talk"
(refused association, abort, timeout) raises. Every exception carries a message meant for
a user: it names the file, tag, peer or instance involved, and the CLI prints it as one
line (never a traceback).

::

    OpenIGRTError
    ├── ConfigError                 bad configuration value (names the key)      -> exit 2
    ├── DicomInputError             unreadable/invalid DICOM input (names file/tag)
    │   ├── MissingAttributeError   a required attribute is absent or empty
    │   └── UnsupportedObjectError  SOP class / transfer syntax we do not handle
    ├── ImageInputError             unreadable/unusable non-DICOM image (NIfTI, MHA; names the file)
    ├── XmlInterfaceError           malformed or out-of-limits extended-interface XML
    ├── BuildError                  an IOD builder was given an invalid value (names attribute)
    ├── NetworkError                could not talk to a peer (names the peer)
    │   ├── ConnectionFailed        TCP connect failed / refused
    │   │   └── TlsError            the TLS handshake failed (certificate, CA, host name, plain port)
    │   ├── AssociationRejected     A-ASSOCIATE-RJ (result, source, reason)
    │   ├── AssociationAborted      A-ABORT / A-P-ABORT or connection lost
    │   ├── DimseTimeout            no DIMSE response within the configured timeout
    │   ├── HttpStatusError         a DICOMweb server answered an HTTP error status (status, url on it)
    │   ├── HttpTimeout             no HTTP progress / response within the configured timeout
    │   └── BadResponse             a peer's answer is malformed (truncated, wrong content type, not DICOM)
    ├── RetrieveError               a Q/R request ended in failure (status is data on it)
    ├── StoreError                  a storage task could not complete (per-instance results on it)
    ├── CacheError                  the local cache/index cannot be written or read
    ├── PreconditionError           a plan/reference check failed for the requested match
    ├── RegistrationError           a registration failed (no overlap, blank image, divergence)
    └── WorkflowError               a fraction/session step cannot proceed
"""

from __future__ import annotations


class OpenIGRTError(Exception):
    """Base class of every error OpenIGRT raises on purpose."""


class ConfigError(OpenIGRTError):
    """A configuration value is missing or invalid.

    The message starts with the dotted key, e.g. ``network.dimse_timeout: expected ...``.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config {key}: {problem}")


class DicomInputError(OpenIGRTError):
    """A DICOM file or data set cannot be used; the message names the file and/or tag."""


class MissingAttributeError(DicomInputError):
    """A required attribute is absent or empty."""


class UnsupportedObjectError(DicomInputError):
    """The object's SOP class or transfer syntax is not one we handle."""


class ImageInputError(OpenIGRTError):
    """A non-DICOM image file (NIfTI, MetaImage, ...) cannot be used; the message names the file."""


class XmlInterfaceError(OpenIGRTError):
    """The Varian extended-interface XML is malformed or violates an occurrence limit."""


class BuildError(OpenIGRTError, ValueError):
    """An IOD builder was given a value that would make an invalid object."""


class NetworkError(OpenIGRTError):
    """Could not talk to a DICOM peer."""


class ConnectionFailed(NetworkError):
    """The TCP connection to the peer could not be made."""


class TlsError(ConnectionFailed):
    """The TLS handshake with the peer failed (its certificate, our certificate, a plain port...)."""


class AssociationRejected(NetworkError):
    """The peer answered A-ASSOCIATE-RJ.

    Attributes ``result``, ``source`` and ``reason`` hold the PS3.8 9.3.4 codes.
    """

    def __init__(self, message: str, *, result: int = 0, source: int = 0, reason: int = 0) -> None:
        self.result = result
        self.source = source
        self.reason = reason
        super().__init__(message)


class AssociationAborted(NetworkError):
    """The association was aborted by the peer or the network."""


class DimseTimeout(NetworkError):
    """No DIMSE response arrived within the configured DIMSE timeout."""


class HttpStatusError(NetworkError):
    """A DICOMweb server answered an HTTP error status; ``status`` and ``url`` are on it."""

    def __init__(self, message: str, *, status: int, url: str) -> None:
        self.status = status
        self.url = url
        super().__init__(message)


class HttpTimeout(NetworkError):
    """An HTTP request made no progress (or did not finish) within the configured timeout."""


class BadResponse(NetworkError):
    """A peer's answer is malformed: truncated, of the wrong content type, or not DICOM where DICOM is due."""


class RetrieveError(OpenIGRTError):
    """A C-FIND or C-MOVE ended in failure; ``status`` holds the DIMSE status when known."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class StoreError(OpenIGRTError):
    """A storage task could not complete."""


class CacheError(OpenIGRTError):
    """The local cache or its index cannot be written or read."""


class PreconditionError(OpenIGRTError):
    """The plan or its references do not allow the requested match."""


class RegistrationError(OpenIGRTError):
    """A registration failed; the message gives the reason."""


class WorkflowError(OpenIGRTError):
    """A fraction/session step cannot proceed."""
