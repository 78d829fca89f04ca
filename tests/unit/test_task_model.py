"""Task ids, money in hundredths, progress that never goes back."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from vidgate.auth.model import GroupLimits
from vidgate.billing.model import cents_to_credits, credits_to_cents
from vidgate.billing.pricing import price_for
from vidgate.engines.registry import ModelSpec
from vidgate.tasks.lifecycle import next_progress
from vidgate.tasks.model import TaskStatus, is_task_id_shaped, new_task_id

ID_SHAPE = re.compile(r"task-unified-1757169743-[a-z0-9]{8}")


def test_task_ids_have_the_reference_shape_and_do_not_repeat() -> None:
    ids = {new_task_id(1757169743) for _ in range(2000)}
    assert len(ids) == 2000
    assert all(ID_SHAPE.fullmatch(task_id) for task_id in ids)
    # Every character of the alphabet turns up: the random part is not a narrow subset.
    assert set("".join(i[-8:] for i in ids)) == set("abcdefghijklmnopqrstuvwxyz0123456789")


def test_id_prefix_check() -> None:
    assert is_task_id_shaped("task-unified-1-abc")
    assert not is_task_id_shaped("task-1-abc")
    assert not is_task_id_shaped("")


def test_terminal_statuses() -> None:
    assert {s for s in TaskStatus if s.is_terminal} == {TaskStatus.COMPLETED, TaskStatus.FAILED}


@given(st.integers(min_value=0, max_value=10**12))
def test_cents_round_trip(cents: int) -> None:
    assert credits_to_cents(cents_to_credits(cents)) == cents


def test_price_is_rounded_to_hundredths() -> None:
    spec = ModelSpec(name="m", engine="preview", price=Decimal("25.705"))
    assert price_for(spec, GroupLimits("default")) == Decimal("25.71")
    assert price_for(spec, GroupLimits("vip", Decimal("0.8"))) == Decimal("20.56")  # 20.564
    assert price_for(spec, GroupLimits("free", Decimal("0"))) == Decimal("0.00")


@given(st.integers(min_value=0, max_value=99), st.floats(min_value=0, max_value=1))
def test_progress_never_goes_back_and_stays_below_100(current: int, fraction: float) -> None:
    progress = next_progress(current, fraction)
    assert progress >= current
    assert 1 <= progress <= 99
