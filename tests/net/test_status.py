"""Status tables and behaviour (NET-1, NET-5, NET-6, NET-8): every code path of net/status.py."""

from __future__ import annotations

import pytest

from openigrt.net import status
from openigrt.net.status import Category, QueryOutcome, Service, StoreOutcome, classify, find_outcome, move_outcome, store_outcome


@pytest.mark.parametrize(("code", "outcome"), [
    (0x0000, StoreOutcome.SENT),
    (0xB000, StoreOutcome.WARNING), (0xB006, StoreOutcome.WARNING), (0xB007, StoreOutcome.WARNING),
    (0xB123, StoreOutcome.WARNING),  # any other Bxxx: warning (NET-1 "anything else")
    (0xA700, StoreOutcome.FAILED), (0xA7FF, StoreOutcome.FAILED), (0xA750, StoreOutcome.FAILED),
    (0xA900, StoreOutcome.FAILED), (0xA9FF, StoreOutcome.FAILED),
    (0xC000, StoreOutcome.FAILED), (0xCFFF, StoreOutcome.FAILED), (0xC211, StoreOutcome.FAILED),
    (0x0117, StoreOutcome.FAILED), (0x0122, StoreOutcome.FAILED), (0x0001, StoreOutcome.WARNING),
    (0xFE00, StoreOutcome.FAILED), (0xFF00, StoreOutcome.FAILED), (0x1234, StoreOutcome.FAILED),
])
def test_store_outcome_follows_net1_table(code: int, outcome: StoreOutcome) -> None:
    assert store_outcome(code) is outcome


@pytest.mark.parametrize(("code", "outcome"), [
    (0xFF00, QueryOutcome.PENDING), (0xFF01, QueryOutcome.PENDING), (0x0000, QueryOutcome.COMPLETE),
    (0xA700, QueryOutcome.FAILED), (0xA900, QueryOutcome.FAILED), (0xC000, QueryOutcome.FAILED),
    (0xCFFF, QueryOutcome.FAILED), (0xFE00, QueryOutcome.FAILED), (0xB000, QueryOutcome.FAILED),
    (0x0122, QueryOutcome.FAILED),
])
def test_find_outcome_follows_net5(code: int, outcome: QueryOutcome) -> None:
    assert find_outcome(code) is outcome


@pytest.mark.parametrize(("code", "outcome"), [
    (0xFF00, QueryOutcome.PENDING), (0x0000, QueryOutcome.COMPLETE), (0xB000, QueryOutcome.WARNING),
    (0xA701, QueryOutcome.FAILED), (0xA702, QueryOutcome.FAILED), (0xA801, QueryOutcome.FAILED),
    (0xA900, QueryOutcome.FAILED), (0xC000, QueryOutcome.FAILED), (0xC123, QueryOutcome.FAILED),
    (0xFE00, QueryOutcome.FAILED), (0xFF01, QueryOutcome.FAILED), (0xB001, QueryOutcome.FAILED),
])
def test_move_outcome_follows_net6(code: int, outcome: QueryOutcome) -> None:
    assert move_outcome(code) is outcome


def test_classify_order_exact_then_range_then_general_then_rules() -> None:
    assert classify(0xA801, Service.MOVE).description == "Refused: Move destination unknown"  # exact
    assert classify(0xA7A7, Service.STORE).description == "Refused: Out of resources"  # range
    assert classify(0xC5C5, Service.FIND).description == "Unable to process"  # range
    assert classify(0x0122, Service.STORE).description == "Refused: SOP Class not supported"  # general
    info = classify(0xBEEF, Service.ECHO)  # rule: Bxxx warning
    assert (info.category, info.description) == (Category.WARNING, "Unknown status")
    assert classify(0xFF00, Service.ECHO).category is Category.PENDING
    assert classify(0xFE00, Service.STORE).category is Category.CANCEL
    assert classify(0x7777, Service.STORE).category is Category.FAILURE
    assert classify(0x0000, Service.MOVE).category is Category.SUCCESS
    assert "0xA801" in str(classify(0xA801, Service.MOVE))


def test_a801_is_move_specific() -> None:
    assert classify(0xA801, Service.MOVE).description.endswith("Move destination unknown")
    assert classify(0xA801, Service.STORE).description == "Unknown status"


def test_tables_are_consistent() -> None:
    for table in (status.GENERAL_STATUS, status.STORE_STATUS, status.FIND_STATUS, status.MOVE_STATUS):
        for code, (cat, desc) in table.items():
            assert 0 <= code <= 0xFFFF and isinstance(cat, Category) and desc
    for ranges in (status.STORE_RANGES, status.FIND_RANGES, status.MOVE_RANGES):
        for lo, hi, cat, _ in ranges:
            assert lo < hi and cat is Category.FAILURE


def test_scp_answer_constants_are_net8_codes() -> None:
    assert (status.SCP_SUCCESS, status.SCP_OUT_OF_RESOURCES, status.SCP_INVALID_OBJECT_INSTANCE,
            status.SCP_DATASET_MISMATCH, status.SCP_CANNOT_UNDERSTAND) == (0x0000, 0xA700, 0x0117, 0xA900, 0xC000)
    for code in (0xA700, 0x0117, 0xA900, 0xC000):
        assert store_outcome(code) is StoreOutcome.FAILED
