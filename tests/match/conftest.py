"""Shared fixtures of the matching tests: a seeded synthetic CT and E's projection geometry / DRR renderer."""

from __future__ import annotations

import pytest

from openigrt.geometry.volume import Volume
from tests.match.synthetic import planning_ct


@pytest.fixture(scope="session")
def ct_fine() -> Volume:
    """1 mm in-plane, 2 mm slices: fine enough for sub-0.5 mm marker localisation."""
    return planning_ct(shape=(40, 160, 200), spacing=(1.0, 1.0, 2.0))
