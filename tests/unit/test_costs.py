from __future__ import annotations

from datetime import date
from decimal import Decimal

from worker.config import ModelConfig
from worker.costs import price_call

MODEL = ModelConfig(
    provider="p", name="m", context_window=1000, max_output_tokens=100,
    input_usd_per_mtok=Decimal("2.50"), cached_input_usd_per_mtok=Decimal("1.25"),
    output_usd_per_mtok=Decimal("10.00"), price_date=date(2026, 11, 1),
)


def test_price_is_exact_decimal() -> None:
    assert price_call(MODEL, 1000, 200) == Decimal("0.0045")


def test_cached_tokens_use_cached_price() -> None:
    # 600 uncached * 2.50 + 400 cached * 1.25 + 0 output, per million.
    assert price_call(MODEL, 1000, 0, cached_tokens=400) == Decimal("0.002")


def test_cached_price_falls_back_to_input_price() -> None:
    model = MODEL.model_copy(update={"cached_input_usd_per_mtok": None})
    assert price_call(model, 1000, 0, cached_tokens=400) == Decimal("0.0025")
