"""DICOM network node: association set-up, SCU and SCP services, durable cache (SPEC §1, NET-1 … NET-13).

``net`` moves data sets; it never builds IODs. Modules (each maps to one piece of the standard):

=====================  =====================================================================
``net.sop``            SOP class / transfer syntax UIDs and the roles table of SPEC §1
``net.status``         DIMSE status tables per service and :func:`~openigrt.net.status.classify`
``net.ae``             one configured AE, TCP_NODELAY on every socket, association limiter,
                       :func:`~openigrt.net.ae.open_association`
``net.header``         structure check and index header of an encoded data set (no full decode)
``net.cache``          durable cache (atomic write + SQLite index): :class:`~openigrt.net.cache.InstanceCache`,
                       :func:`~openigrt.net.cache.atomic_write`
=====================  =====================================================================

Shared helpers for the archive (``openigrt.archive``): :func:`openigrt.net.cache.atomic_write`,
:func:`openigrt.net.cache.ensure_dir`, :class:`openigrt.net.cache.InstanceCache`,
:func:`openigrt.net.ae.make_ae`, :func:`openigrt.net.ae.nodelay_handler` (bind it in
``evt_handlers`` of ``AE.start_server``/``AE.associate``: sets TCP_NODELAY on every socket).
"""
