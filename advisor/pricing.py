"""Token prices: a shipped table for well-known hosted models, overridable in task.yaml.

An unknown price stays unknown (None, shown as "unknown"), never 0: a row that cannot be
priced cannot be ranked on cost, and the verdict says so.
"""

from __future__ import annotations

from typing import Any

from advisor.modelspec import ModelChoice, Price

# USD per million tokens, OpenAI API standard tier: (input, cached input or None, output, where it is
# written down). Each row was checked on 2026-11-30 against stored copies of the pages named (no live
# page can be read from here); rows that could not be checked were dropped, not guessed. Prices
# change: put current ones under `prices:` in task.yaml (with `cached_input_per_1m_usd` if you know it).
_CACHING = "https://openai.com/index/api-prompt-caching/ (2024-10-01)"
_PRICING_COPY = ("platform.openai.com/docs/pricing as transcribed on 2025-06-03 in the hex.pm package "
                 "openai_responses 0.4.1, lib/responses/pricing.ex")
_EMBEDDINGS = ("https://developers.openai.com/api/docs/models/text-embedding-3-large (undated page, stored copy "
               "read 2026-11-30); https://openai.com/index/new-embedding-models-and-api-updates/ (2024-01-25)")
SHIPPED_PRICES: dict[str, tuple[float, float | None, float, str]] = {
    # OpenAI's own announcement lists these (snapshots gpt-4o-2024-08-06, gpt-4o-mini-2024-07-18).
    "gpt-4o": (2.50, 1.25, 10.00, _CACHING),
    "gpt-4o-mini": (0.15, 0.075, 0.60, _CACHING),
    # A dated copy of OpenAI's pricing page; OpenAI's gpt-4.1-nano model page (ko-KR) also shows
    # gpt-4.1-mini's input at $0.40. Third-party listings of the OpenAI route agree (Helicone, Vercel).
    "gpt-4.1": (2.00, 0.50, 8.00, _PRICING_COPY),
    "gpt-4.1-mini": (0.40, 0.10, 1.60, _PRICING_COPY),
    "text-embedding-3-small": (0.02, None, 0.0, _EMBEDDINGS),
    "text-embedding-3-large": (0.13, None, 0.0, _EMBEDDINGS),
}
# Dropped on 2026-11-30: gpt-3.5-turbo, gpt-4.1-nano, o3-mini and o4-mini were shut down in the API on
# 2026-10-23 (https://developers.openai.com/api/docs/models/gpt-3.5-turbo says so of gpt-3.5-turbo; the
# deprecations page, https://developers.openai.com/api/docs/deprecations, as quoted on 2026-10-15 at
# dev.to/importstatic, lists all four). The four rows above shut down on 2027-01-14 (same sources).
# Context windows (tokens), for the runner's fit check; same check date.
CONTEXT_WINDOWS: dict[str, int] = {
    # OpenRouter's and Vercel's listings of the OpenAI models (no OpenAI page for these was stored).
    "gpt-4o": 128_000, "gpt-4o-mini": 128_000,
    # https://feeds.simonwillison.net/2025/Apr/14/gpt-4-1 (2025-04-14): all three GPT-4.1 models take
    # 1,047,576 tokens; OpenAI's gpt-4.1-nano page gives the same for nano.
    "gpt-4.1": 1_047_576, "gpt-4.1-mini": 1_047_576,
}


def resolve_price(choice: ModelChoice, overrides: dict[str, Price]) -> tuple[Price | None, str]:
    """(price, where it came from) for an `openai:` model: its own setting, `prices:`, the shipped
    table (for the API's own host only), else (None, "unknown")."""
    if choice.settings.price is not None:
        return choice.settings.price, "task.yaml (model settings)"
    if choice.name in overrides:
        return overrides[choice.name], "task.yaml (prices)"
    if choice.name in SHIPPED_PRICES and choice.settings.base_url in (None, "https://api.openai.com/v1"):
        inp, cached, out, where = SHIPPED_PRICES[choice.name]
        price = Price(input_per_1m_usd=inp, output_per_1m_usd=out, cached_input_per_1m_usd=cached)
        return price, f"shipped table, from {where}"
    return None, "unknown"


def token_cost_usd(price: Price | None, tokens_in: int, tokens_out: int, tokens_in_cached: int = 0) -> float | None:
    """USD for these tokens; 0 when priced per server hour (charged by time); None when unknown.

    `tokens_in_cached` of the `tokens_in` prompt tokens came from the provider's prompt cache: they
    cost `cached_input_per_1m_usd` where the price gives one, else the full input price.
    """
    if price is None:
        return None
    if price.server_hour_usd is not None:
        return 0.0
    assert price.input_per_1m_usd is not None and price.output_per_1m_usd is not None
    cached = min(tokens_in_cached, tokens_in) if price.cached_input_per_1m_usd is not None else 0
    return ((tokens_in - cached) * price.input_per_1m_usd + cached * (price.cached_input_per_1m_usd or 0.0)
            + tokens_out * price.output_per_1m_usd) / 1e6


def price_basis(price: Price | None) -> str:
    """What an API row's per-query price assumes, in words (results.json `price_basis`)."""
    if price is None:
        return "unknown: no price for this model"
    if price.server_hour_usd is not None:
        return "wall seconds per answer x the server's $/hour"
    if price.cached_input_per_1m_usd is not None:
        return ("tokens from each response's usage x the price; cached input tokens "
                "(usage.prompt_tokens_details.cached_tokens) at the cached-input price")
    return ("tokens from each response's usage x the price; cached input tokens at the full input price "
            "(no cached-input price given)")


def describe(price: Price | None, source: str) -> dict[str, Any]:
    """The price as results.json records it (null fields when unknown)."""
    data = price.model_dump() if price is not None else {"input_per_1m_usd": None, "output_per_1m_usd": None,
                                                          "cached_input_per_1m_usd": None, "server_hour_usd": None}
    return {**data, "source": source}
