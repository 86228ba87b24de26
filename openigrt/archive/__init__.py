"""Embedded archive (SPEC ARCHIVE-1): a real Q/R + Storage SCP on an on-disk store, for the demo and tests.

It plays the TMS/PACS: it stores what it receives (C-STORE) or imports (files), answers C-FIND
and C-MOVE in the Study Root and Patient Root models, and sends C-MOVE sub-operations to the
move destinations it knows. Production users point OpenIGRT at their own TMS instead.

Public API
----------
:class:`~openigrt.archive.server.EmbeddedArchive`
    ``EmbeddedArchive(directory, *, ae_title="OPENIGRT_ARCHIVE", port=0, bind_address="127.0.0.1",
    destinations=(), settings=None)``; a context manager running the SCP in background threads.
    ``.port`` / ``.remote`` (``RemoteAE`` to give our SCU), ``.add_destination(RemoteAE)``,
    ``.import_paths(paths, progress=None) -> ImportReport``, ``.query(level, **keys) -> [Dataset]``
    (same matching as the SCP), ``.store`` (:class:`~openigrt.archive.store.ArchiveStore`).
:class:`~openigrt.archive.store.ArchiveStore`
    The directory on its own (no network): ``import_paths``, ``store``, ``read``, ``index``.

Services and statuses
---------------------
* Associations are accepted by :mod:`openigrt.archive.acceptor`, built on the node's lean PS3.8
  acceptor (:mod:`openigrt.net.acceptor`: one blocking thread per association, no polling);
  the Called AE Title must be the archive's (else A-ASSOCIATE-RJ 1/1/7), any Calling AE Title
  is accepted. From each proposed context the first transfer syntax the proposer listed that
  the archive supports is chosen.
* Verification; C-STORE of every storage SOP class pynetdicom knows, in any transfer syntax
  pydicom knows (e.g. MPEG2 for RT Image cine). Data set bytes are stored unchanged, durably
  (temporary file, fsync, rename) before 0000 is answered; a second instance with the same SOP
  Instance UID replaces file and row.
  0117 SOP Instance UID missing or not the command's; A900 SOP Class not the command's or
  Study/Series Instance UID missing; C000 undecodable/truncated stream; A700 write/index failure.
* C-FIND and C-MOVE: Study Root (STUDY, SERIES, IMAGE) and Patient Root (PATIENT, STUDY, SERIES,
  IMAGE). C-GET is not offered. FIND answers FF00 per match (FF01 when a key could not be used
  for matching), then 0000; A900 bad identifier; C000 undecodable identifier; A700 index
  failure; FE00 after C-CANCEL.
  MOVE: A900 bad identifier, A801 unknown destination (both before any sub-operation), A701
  index failure, A702 destination unreachable or refusing every context; one association per
  C-MOVE to the destination; FF00 after each sub-operation but the last with remaining /
  completed / failed / warning counts; final 0000, or B000 with the Failed SOP Instance UID
  List when a sub-operation failed or warned; FE00 with the counts after C-CANCEL.
* Sub-operations send the stored bytes when the destination accepted the stored transfer
  syntax, otherwise re-encode uncompressed data in Implicit (else Explicit) VR LE; compressed
  data (MPEG2, JPEG...) is never decompressed (that sub-operation fails). TCP_NODELAY on every
  socket. A sub-operation that gets no response or loses its association is retried once on a
  fresh association.

Query semantics (PS3.4 C.2.2.2)
-------------------------------
* Universal matching: zero-length value, or a lone ``*``.
* Single value: exact; PN case-insensitive with empty trailing components ignored; other text
  VRs case-sensitive, leading/trailing spaces ignored; a (partial) TM value denotes the interval
  it spells (``1430`` = 14:30:00-14:30:59.999999); DA accepts ``YYYYMMDD`` (and ``YYYY.MM.DD``).
* Wildcards ``*`` and ``?`` for text VRs other than UI, DA, TM, DT and numeric VRs.
* List of UID matching for any multi-valued UI key (e.g. C-MOVE at IMAGE level with several
  SOP Instance UIDs); multiple values on other keys are refused (A900).
* Range matching ``D1-D2``, ``-D2``, ``D1-`` on DA and TM keys, inclusive; date and time are
  matched independently (no combined date-time matching).
* ModalitiesInStudy matches a study having any of the listed modalities.
* Hierarchical model, leniently: unique keys of higher levels are optional (an IMAGE-level
  request keyed only by SOP Instance UID works) and constrain the match when given; a key of a
  lower level than the Query/Retrieve Level with a value is refused (A900), without one ignored.
* Indexed keys (:data:`~openigrt.archive.model.ATTRIBUTES`) are matched in SQLite. Other text
  keys are matched and returned from the stored instance (at IMAGE level the instance itself,
  above it one representative instance of the entity). Sequence and binary keys are returned
  but not matched (pending status FF01). Private keys are ignored.
* Counts (Number of ... Related ...), ModalitiesInStudy, SOPClassesInStudy, RetrieveAETitle and
  InstanceAvailability (``ONLINE``) are computed.
* Specific Character Set: queries may carry one or none; values are decoded per their own
  character set and compared as Unicode. Responses carry none when all values are ASCII, the
  query's own (single-byte) set when it can encode every value, else ``ISO_IR 192`` (UTF-8).

Not supported: relational queries, combined date-time matching, sequence matching, C-GET,
extended negotiation, fuzzy or timezone-adjusted matching.
"""

from openigrt.archive.server import DEFAULT_ARCHIVE_AE_TITLE, EmbeddedArchive
from openigrt.archive.store import ArchiveStore, ImportReport, ImportResult

__all__ = ["DEFAULT_ARCHIVE_AE_TITLE", "ArchiveStore", "EmbeddedArchive", "ImportReport", "ImportResult"]
