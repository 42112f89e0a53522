"""Token prices: a shipped table for well-known hosted models, overridable in task.yaml.

An unknown price stays unknown (None, shown as "unknown"), never 0: a row that cannot be
priced cannot be ranked on cost, and the verdict says so.
"""

from __future__ import annotations

from typing import Any

from advisor.modelspec import ModelChoice, Price

# USD per million tokens as listed on openai.com/api/pricing (standard tier), taken on this date.
# Prices change: put the current ones under `prices:` in task.yaml to override.
PRICES_TAKEN = "2025-06-01"
SHIPPED_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
}
# Context windows (tokens) of the same models, for the runner's fit check.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000, "gpt-4o-mini": 128_000, "gpt-4.1": 1_047_576, "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576, "o4-mini": 200_000, "o3-mini": 200_000, "gpt-3.5-turbo": 16_385,
}


def resolve_price(choice: ModelChoice, overrides: dict[str, Price]) -> tuple[Price | None, str]:
    """(price, where it came from) for an `openai:` model: its own setting, `prices:`, the shipped
    table (for the API's own host only), else (None, "unknown")."""
    if choice.settings.price is not None:
        return choice.settings.price, "task.yaml (model settings)"
    if choice.name in overrides:
        return overrides[choice.name], "task.yaml (prices)"
    if choice.name in SHIPPED_PRICES and choice.settings.base_url in (None, "https://api.openai.com/v1"):
        inp, out = SHIPPED_PRICES[choice.name]
        return Price(input_per_1m_usd=inp, output_per_1m_usd=out), f"shipped table ({PRICES_TAKEN})"
    return None, "unknown"


def token_cost_usd(price: Price | None, tokens_in: int, tokens_out: int) -> float | None:
    """USD for these tokens; 0 when priced per server hour (charged by time); None when unknown."""
    if price is None:
        return None
    if price.server_hour_usd is not None:
        return 0.0
    assert price.input_per_1m_usd is not None and price.output_per_1m_usd is not None
    return (tokens_in * price.input_per_1m_usd + tokens_out * price.output_per_1m_usd) / 1e6


def describe(price: Price | None, source: str) -> dict[str, Any]:
    """The price as results.json records it (null fields when unknown)."""
    data = price.model_dump() if price is not None else {"input_per_1m_usd": None, "output_per_1m_usd": None,
                                                          "server_hour_usd": None}
    return {**data, "source": source}
