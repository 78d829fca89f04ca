"""What a call costs: the model's per-call price times the caller's user-group ratio."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from vidgate.auth.model import GroupLimits
from vidgate.engines.registry import ModelSpec

CENT = Decimal("0.01")


def price_for(spec: ModelSpec, group: GroupLimits) -> Decimal:
    """Rounded half-up to the hundredth of a credit, the ledger's unit."""
    return (spec.price * group.price_ratio).quantize(CENT, rounding=ROUND_HALF_UP)
