# OpenIGRT developer entry points. The README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test peers bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Set up and run a whole fraction on the built-in phantom against an embedded archive.
demo: setup
	$(VENV)/bin/openigrt demo --match all

## Install the DICOM peers (DCMTK, Orthanc, dicom3tools, plastimatch) and run the whole test suite.
test: setup peers
	OPENIGRT_REQUIRE_PEERS=1 $(PY) -m pytest

peers:
	scripts/install-peers.sh

## Benchmarks (need the bench extra: elastix); results go to benchmarks/README.md
bench: setup peers
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
