"""The `openai:` backend's parts that need no server: label choice, budget, prices, unknown costs."""

from __future__ import annotations

import math

from advisor.backends.classify_api import (
    distinct_first_tokens,
    map_to_label,
    parse_enum_answer,
    rank_top_logprobs,
)

LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def test_top_logprobs_rank_labels_by_the_tokens_that_start_them():
    top = [("LOC", -0.5), (" H", -1.0), ("HUM", -2.0), ("Type", -3.0), ("", -4.0)]
    label, scores = rank_top_logprobs(top, LABELS)
    assert label == "LOC"
    hum = scores[LABELS.index("HUM")]
    assert hum is not None and math.isclose(hum, math.log(math.exp(-1.0) + math.exp(-2.0)))
    assert scores[LABELS.index("NUM")] is None  # not among the top tokens: unknown, not a made-up floor
    assert rank_top_logprobs([("The", -0.1), ("A", -0.2)], ["Apple", "Avocado"])[0] is None  # "A" starts both


def test_first_tokens_distinct_by_tokenizer_or_first_character():
    assert distinct_first_tokens(LABELS, None)
    assert not distinct_first_tokens(["positive", "pos-neutral", "negative"], None)
    fake_ids = {"spam": [7, 1], "spat": [7, 2], "eggs": [9]}
    assert not distinct_first_tokens(list(fake_ids), lambda s: fake_ids[s])
    assert distinct_first_tokens(["spam", "eggs"], lambda s: fake_ids[s])


def test_mapping_free_text_to_a_label():
    assert map_to_label(" LOC.", LABELS) == "LOC"
    assert map_to_label("hum", LABELS) == "HUM"
    assert map_to_label("New  York", ["new york", "paris"]) == "new york"
    assert map_to_label("The answer is LOC", LABELS) is None  # unmappable: counted, scored wrong


def test_enum_answers_must_be_whole():
    assert parse_enum_answer('"HUM"', "stop", LABELS) == "HUM"
    assert parse_enum_answer('"HUM"', "length", LABELS) == "HUM"  # ran on in trailing whitespace only
    assert parse_enum_answer('"HU', "length", LABELS) is None  # cut short
    assert parse_enum_answer('"XYZ"', "stop", LABELS) is None


def test_budget_counts_requests_and_dollars_and_stops():
    import pytest

    from advisor.backends.openai import RunBudget, RunStopped

    budget = RunBudget(max_requests=2)
    budget.reserve()
    budget.reserve()
    with pytest.raises(RunStopped, match="max_requests 2"):
        budget.reserve()
    dollars = RunBudget(max_usd=0.01)
    dollars.reserve()
    dollars.charge(0.02)
    with pytest.raises(RunStopped, match="max_usd 0.01"):
        dollars.reserve()


def test_prices_shipped_overridden_or_unknown_never_zero():
    from advisor.modelspec import ModelChoice, OpenAISettings, Price
    from advisor.pricing import resolve_price, token_cost_usd

    hosted = ModelChoice(None, "openai:gpt-4o-mini", OpenAISettings())
    price, source = resolve_price(hosted, {})
    # The figure and where it is written down: OpenAI's prompt-caching announcement of 2024-10-01.
    assert source == "shipped table, from https://openai.com/index/api-prompt-caching/ (2024-10-01)"
    assert token_cost_usd(price, 1_000_000, 0) == 0.15 and price.cached_input_per_1m_usd == 0.075
    cheaper = Price(input_per_1m_usd=0.1, output_per_1m_usd=0.2)
    assert resolve_price(hosted, {"gpt-4o-mini": cheaper}) == (cheaper, "task.yaml (prices)")
    # The same name on someone's own server is not the API's price: unknown, not 0.
    served = ModelChoice(None, "openai:gpt-4o-mini", OpenAISettings(base_url="http://gpu-box:8000/v1"))
    assert resolve_price(served, {}) == (None, "unknown")
    assert token_cost_usd(None, 100, 10) is None
    assert token_cost_usd(Price(server_hour_usd=2.0), 100, 10) == 0.0  # charged by wall time instead
    # Shut down in the API on 2026-10-23: no shipped price any more, so unknown (never a stale figure).
    for gone in ("gpt-3.5-turbo", "gpt-4.1-nano", "o3-mini", "o4-mini"):
        assert resolve_price(ModelChoice(None, f"openai:{gone}", OpenAISettings()), {}) == (None, "unknown")


def test_every_shipped_price_names_a_dated_source():
    import re

    from advisor.pricing import CONTEXT_WINDOWS, SHIPPED_PRICES

    for name, (inp, cached, out, where) in SHIPPED_PRICES.items():
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", where) and ("https://" in where or ".com/" in where), name
        assert inp > 0 and out >= 0 and (cached is None or 0 < cached < inp), name
    assert set(CONTEXT_WINDOWS) <= set(SHIPPED_PRICES)
    assert SHIPPED_PRICES["gpt-4.1"][:3] == (2.00, 0.50, 8.00) and SHIPPED_PRICES["gpt-4o"][:3] == (2.50, 1.25, 10.00)


def test_cached_input_tokens_cost_the_cached_price_only_where_one_is_given():
    import pytest
    from openai.types import CompletionUsage
    from openai.types.completion_usage import PromptTokensDetails
    from pydantic import ValidationError

    from advisor.backends.openai import usage_tokens
    from advisor.modelspec import Price
    from advisor.pricing import price_basis, token_cost_usd

    # The client's own usage types: cached_tokens when the server reports them (OpenAI, vLLM,
    # llama.cpp's server), 0 when it leaves prompt_tokens_details out.
    usage = CompletionUsage(prompt_tokens=2006, completion_tokens=300, total_tokens=2306,
                            prompt_tokens_details=PromptTokensDetails(cached_tokens=1920))
    assert usage_tokens(usage) == (2006, 300, 1920)
    assert usage_tokens(CompletionUsage(prompt_tokens=50, completion_tokens=2, total_tokens=52)) == (50, 2, 0)
    discounted = Price(input_per_1m_usd=0.15, output_per_1m_usd=0.60, cached_input_per_1m_usd=0.075)
    assert token_cost_usd(discounted, 2006, 300, 1920) == pytest.approx((86 * 0.15 + 1920 * 0.075 + 300 * 0.6) / 1e6)
    full = Price(input_per_1m_usd=0.15, output_per_1m_usd=0.60)  # no cached price known: every input token in full
    assert token_cost_usd(full, 2006, 300, 1920) == token_cost_usd(full, 2006, 300) == pytest.approx(
        (2006 * 0.15 + 300 * 0.6) / 1e6)
    assert "at the cached-input price" in price_basis(discounted) and "at the full input price" in price_basis(full)
    with pytest.raises(ValidationError, match="cached_input_per_1m_usd goes with"):
        Price(cached_input_per_1m_usd=0.1, server_hour_usd=1.0)


def test_scorecard_and_verdict_show_an_unknown_price_as_unknown():
    from rich.console import Console

    from advisor.record import (
        ArtifactRecord,
        CostRecord,
        LeverRecord,
        MetricRecord,
        RunRecord,
        TargetRecord,
    )
    from advisor.report.scorecard import print_results
    from advisor.spec import Costs
    from advisor.verdict import LeverEvidence, decide

    values = [1.0] * 95 + [0.0] * 5
    metrics = {"accuracy": MetricRecord(value=0.95, ci_low=0.89, ci_high=0.98)}
    cost = CostRecord(setup_usd=0.0, per_1k_queries_usd=None, latency_ms_p50=300, latency_ms_p95=400,
                      upkeep_usd_per_month=0.0, monthly_usd=None, first_year_usd=None, tokens_in_mean=1,
                      tokens_out_mean=1, compute_s_per_query=0, setup_seconds=0)
    known = cost.model_copy(update={"per_1k_queries_usd": 0.5, "monthly_usd": 50.0, "first_year_usd": 600.0})
    rows = [LeverEvidence("prompt@api", 0, "prompt", 100, metrics, cost, {"accuracy": values}, [None] * 100),
            LeverEvidence("prompt@local", 0, "prompt", 100, metrics, known, {"accuracy": values}, [None] * 100)]
    target = TargetRecord(metric="accuracy", threshold=0.8, confidence=0.95)
    verdict = decide(target, rows, None, golds=[None] * 100)
    assert verdict.lever == "prompt@local" and verdict.record.ranking == ["prompt@local", "prompt@api"]
    assert any("prompt@api: price unknown" in n for n in verdict.record.notes)
    console = Console(record=True, width=120)
    levers = [LeverRecord(name=r.name, lever="prompt", model=r.name.split("@")[1], rung=0, family="prompt",
                          artifact=ArtifactRecord(identity="a", backend="b"), n_eval=100, metrics=metrics,
                          cost=r.cost, verdict=verdict.levers[r.name]) for r in rows]
    print_results(console, RunRecord(task="t", kind="classification", target=target,
                                     costs=Costs(queries_per_month=1000), levers=levers, verdict=verdict.record))
    text = console.export_text()
    # The cost row writes an unknown price as the report does, "–" (never 0.00), and the caption says
    # what "–" means; the verdict names it as unknown.
    cost_row = next(line.split() for line in text.splitlines() if line.startswith(" prompt@api") and "/" in line)
    assert cost_row == ["prompt@api", "–", "–", "0.00", "0.00", "–", "300", "/", "400"], cost_row
    words = " ".join(text.split())  # rich wraps a caption to its table's width
    assert "'–': not known (e.g. no price for the model)" in words and "prompt@api: price unknown" in words
