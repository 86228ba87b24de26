"""The review workstation in the browser (SPEC MATCH-7): ``openigrt review`` and ``--decision web``.

Layer 4 (``docs/ARCHITECTURE.md``): imports :mod:`openigrt.workflow` only and holds no business
logic — what is shown, adjusted and decided is :mod:`openigrt.workflow.review_session`;
:mod:`openigrt.web.app` moves it over HTTP, :mod:`openigrt.web.server` serves it, and
``static/`` is the page (plain JavaScript, canvases, no build step).
"""
