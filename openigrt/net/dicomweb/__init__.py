"""DICOMweb TMS client (PS3.18): QIDO-RS search, WADO-RS retrieve, STOW-RS store, over httpx.

The same services and result types as the DIMSE client, so the workflow is protocol-neutral
(see :mod:`openigrt.net.tms`). Import the submodules directly (this package imports nothing).

=======================  ===================================================================
``dicomweb.client``      :class:`~openigrt.net.dicomweb.client.DicomWebClient` (echo, locate,
                         retrieve, store)
``dicomweb.http``        one configured httpx client; bounded requests; errors with URL/status
``dicomweb.qido``        QIDO-RS searches and ``locate`` with the hierarchical fallback
``dicomweb.wado``        WADO-RS into the cache, multipart parsed incrementally
``dicomweb.stow``        STOW-RS with per-instance results from the Store Instances Response
``dicomweb.multipart``   ``multipart/related`` reader (incremental) and writer
=======================  ===================================================================
"""
