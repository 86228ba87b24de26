"""OpenIGRT: image-guided radiotherapy patient-setup imaging application.

Layers (lower never imports higher; see ``docs/ARCHITECTURE.md``)::

    0  errors, uids, geometry
    1  iod, net, match, sim
    2  plan, archive, (phantom patient in workflow)
    3  workflow
    4  cli
"""

__version__ = "0.1.0"
