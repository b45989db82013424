"""Prices of LLM calls, from the per-model prices in the config file. Money is Decimal."""

from __future__ import annotations

from decimal import Decimal

from worker.config import ModelConfig

MILLION = Decimal(1_000_000)


def price_call(
    model: ModelConfig, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> Decimal:
    """Return the USD price of one call.

    Cached prompt tokens are billed at the cached-input price when the model has one, and
    reasoning tokens are part of `completion_tokens` as OpenAI-compatible APIs report them.
    """
    cached = min(cached_tokens, prompt_tokens)
    cached_price = model.cached_input_usd_per_mtok
    if cached_price is None:
        cached_price = model.input_usd_per_mtok
    total = (
        Decimal(prompt_tokens - cached) * model.input_usd_per_mtok
        + Decimal(cached) * cached_price
        + Decimal(completion_tokens) * model.output_usd_per_mtok
    )
    return total / MILLION
