"""The `openai:` backend's parts that need no server: label choice, budget, prices, unknown costs."""

from __future__ import annotations

import math

from advisor.backends.classify_api import (
    ENUM_SLACK_TOKENS,
    PATHS,
    distinct_first_tokens,
    enum_budget,
    first_token_choice,
    label_tokens,
    map_to_label,
    parse_enum_answer,
    rank_top_logprobs,
    read_first_token,
)
from advisor.types import OPTION_RANKINGS

LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


# SmolLM2's own split of the TREC labels (its server's /tokenize, measured): ABBR is "AB" + "BR".
SMOL = {"ABBR": [(5431, "AB"), (21040, "BR")], " ABBR": [(17683, " AB"), (21040, "BR")],
        "DESC": [(52, "D"), (23110, "ESC")], " DESC": [(420, " D"), (23110, "ESC")],
        "ENTY": [(6213, "ENT"), (73, "Y")], " ENTY": [(8743, " ENT"), (73, "Y")],
        "HUM": [(56, "H"), (8292, "UM")], " HUM": [(407, " H"), (8292, "UM")],
        "LOC": [(21519, "LOC")], " LOC": [(43305, " LOC")], "NUM": [(25398, "NUM")], " NUM": [(38282, " NUM")]}


def _smol(text: str) -> list[tuple[int | None, str]]:
    return SMOL[text]


def test_an_article_or_a_word_start_is_never_credited_to_a_label_the_tokenizer_splits_otherwise():
    lt = label_tokens(LABELS, _smol, "test tokenizer")
    assert lt is not None and lt.exact
    # The model opens with the article "A"; "Ab" (as in "Abraham") and "L" (as in "Liver") follow.
    top = [("A", 49, -0.4), ("Ab", 4150, -1.5), ("L", 60, -1.7), ("AB", 5431, -3.0), (" LOC", 43305, -4.0)]
    read = read_first_token(top, lt)
    assert read.answer == "A" and read.off_label
    abbr, loc = read.logps[LABELS.index("ABBR")], read.logps[LABELS.index("LOC")]
    assert abbr is not None and math.isclose(abbr, -3.0)  # only the real "AB" token counts
    assert loc is not None and math.isclose(loc, -4.0)  # " LOC" (a space first) is LOC's token too; "L" is not
    assert math.isclose(read.label_mass, math.exp(-3.0) + math.exp(-4.0))
    # Without ids (an OpenAI-hosted server), the token's text decides, exactly.
    no_ids = read_first_token([(t, None, lp) for t, _, lp in top], lt)
    assert no_ids.logps == read.logps
    # The approximate rule (no tokenizer at all) is case-sensitive: "Ab" no longer counts for ABBR.
    approx = label_tokens(LABELS, None, "")
    assert approx is not None and not approx.exact
    assert approx.label_of("Ab") is None and approx.label_of("AB") == 0


def test_labels_sharing_a_first_token_cannot_take_the_first_token_path():
    fake = {"spam": [(7, "sp"), (1, "am")], " spam": [(8, " sp"), (1, "am")], "spat": [(7, "sp"), (2, "at")],
            " spat": [(8, " sp"), (2, "at")], "eggs": [(9, "eggs")], " eggs": [(10, " eggs")]}
    assert label_tokens(["spam", "spat", "eggs"], lambda s: fake[s], "t") is None
    assert label_tokens(["spam", "eggs"], lambda s: fake[s], "t") is not None
    assert not distinct_first_tokens(["positive", "pos-neutral", "negative"], None)
    assert distinct_first_tokens(LABELS, None)


def test_top_logprobs_rank_labels_by_the_tokens_that_start_them():
    top = [("LOC", -0.5), (" H", -1.0), ("HUM", -2.0), ("Type", -3.0), ("", -4.0)]
    label, scores = rank_top_logprobs(top, LABELS, label_tokens(LABELS, _smol, "t"))
    assert label == "LOC"
    hum = scores[LABELS.index("HUM")]
    assert hum is not None and math.isclose(hum, -1.0)  # " H" is HUM's first token; "HUM" is not a token of it
    assert scores[LABELS.index("NUM")] is None  # not among the top tokens: unknown, not a made-up floor
    assert rank_top_logprobs([("The", -0.1), ("A", -0.2)], ["Apple", "Avocado"])[0] is None  # "A" starts both


def test_calibration_divides_out_the_prior_the_content_free_prompt_shows():
    # The prompt favours LOC a little; the content-free prompt shows LOC is favoured whatever the question.
    logps = [None, math.log(0.05), None, math.log(0.10), math.log(0.20), None]
    reference = [None, math.log(0.01), None, math.log(0.04), math.log(0.60), None]
    best, scores, picks = first_token_choice("calibrated", logps, reference, math.log(0.005), OPTION_RANKINGS)
    assert LABELS[best] == "DESC"  # 0.05 / 0.01 beats 0.10 / 0.04 and 0.20 / 0.60
    assert LABELS[picks["first_token"]] == "LOC" and LABELS[picks["sum"]] == "LOC"
    assert LABELS[picks["calibrated_prefix"]] == "DESC"
    assert scores[0] == -math.inf  # a label with no token among the item's top ones is never picked
    # No reference: the calibrated methods are left out rather than guessed.
    _, _, bare = first_token_choice("first_token", logps, None, None, OPTION_RANKINGS)
    assert set(bare) == {"sum", "mean"}


def test_mapping_free_text_to_a_label():
    assert map_to_label(" LOC.", LABELS) == "LOC"
    assert map_to_label("hum", LABELS) == "HUM"
    assert map_to_label("New  York", ["new york", "paris"]) == "new york"
    assert map_to_label("The answer is LOC", LABELS) is None  # unmappable: counted, scored wrong


def test_enum_answers_must_be_whole_and_may_come_in_a_fence():
    assert parse_enum_answer('"HUM"', "stop", LABELS) == "HUM"
    assert parse_enum_answer('"HUM"', "length", LABELS) == "HUM"  # ran on in trailing whitespace only
    assert parse_enum_answer('"HU', "length", LABELS) is None  # cut short
    assert parse_enum_answer('"XYZ"', "stop", LABELS) is None
    assert parse_enum_answer('```json\n"ABBR"\n```', "stop", LABELS) == "ABBR"
    assert parse_enum_answer('```json\n"ABBR"', "length", LABELS) == "ABBR"  # the closing fence cut off
    assert parse_enum_answer('```json\n"AB', "length", LABELS) is None
    # The budget leaves room for the fence: the longest quoted label plus the slack.
    assert enum_budget(LABELS, None) == len('"ABBR"') + ENUM_SLACK_TOKENS
    assert enum_budget(LABELS, lambda s: len(_smol(s.strip('"')))) == 2 + ENUM_SLACK_TOKENS


def test_the_classification_path_is_part_of_an_answer_key():
    from advisor.types import GenerationParams

    keys = {GenerationParams(classification_path=p).key() for p in (None, *PATHS)}
    assert len(keys) == 4
    assert GenerationParams(option_ranking=None, classification_path="json_schema_enum").key() == \
        GenerationParams(option_ranking=None).key()  # no options, no path


def test_off_label_share_is_counted_and_warned_about_above_a_tenth():
    from advisor.measure import OFF_LABEL_WARN, off_label
    from advisor.types import Prediction

    def pred(off: bool, mass: float) -> Prediction:
        return Prediction("x", "LOC", "LOC", 1, 1, 0.0, {"off_label": off, "label_mass": mass,
                                                         "label_tokens": "t", "label_tokens_exact": True})

    few = off_label([pred(i < 1, 0.5) for i in range(10)])
    assert few["items"] == 1 and few["share"] == 0.1 and "warning" not in few and OFF_LABEL_WARN == 0.10
    many = off_label([pred(i < 6, 0.1) for i in range(10)])
    assert many["share"] == 0.6 and "6 of 10 items (60%)" in many["warning"]
    assert many["label_mass"] == 0.1 and "approximate" not in many and "constrained choice" in many["warning"]
    # Free text or a JSON enum: nothing was chosen for those items; they are unmappable, scored wrong.
    free = off_label([Prediction("x", None, "The answer", 1, 1, 0.0, {"off_label": True, "unmappable": True})
                      for _ in range(3)])
    assert free["label_mass"] is None and "unmappable and scored wrong" in free["warning"]
    assert "constrained" not in free["warning"]


def test_why_labels_cannot_take_the_first_token_path_is_said_in_words():
    from advisor.backends.classify_api import first_token_clash

    fake = {"New York": [(1, "New"), (2, " York")], " New York": [(3, " New"), (2, " York")],
            "New Delhi": [(1, "New"), (4, " Del")], " New Delhi": [(3, " New"), (4, " Del")]}
    assert first_token_clash(["New York", "New Delhi"], lambda s: fake[s]) == \
        "'New York' and 'New Delhi' begin with the same token 'New'"
    assert first_token_clash(["positive", "pos-neutral"], None) == \
        "'positive' and 'pos-neutral' begin with the same character 'p'"
    assert first_token_clash(LABELS, _smol) is None


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


# -- retries, the in-flight window, Ctrl-C (issue 27) ----------------------------------------------


class _Clock:
    """Stands in for the backend's `time`: sleeping moves it, so a budget of minutes takes none."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _http():
    """The HTTP library the installed openai client is built on (httpx, or a fork of it)."""
    import importlib

    import openai

    return importlib.import_module(openai.DefaultHttpxClient.__bases__[0].__module__.split(".")[0])


def _request():
    return _http().Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def _status_error(status: int, headers: dict[str, str] | None = None):
    import openai

    response = _http().Response(status, headers=headers or {}, request=_request())
    cls = {401: openai.AuthenticationError, 429: openai.RateLimitError}.get(status, openai.APIStatusError)
    return cls(f"status {status}", response=response, body=None)


def _dropped_error():
    import openai

    return openai.APIConnectionError(request=_request())


def _refused_error(cause: OSError | None = None):
    import openai

    try:
        try:
            raise cause or ConnectionRefusedError(111, "Connection refused")
        except OSError as c:
            raise openai.APIConnectionError(request=_request()) from c
    except openai.APIConnectionError as e:
        return e


def _offline_backend(monkeypatch, **settings):
    import advisor.backends.openai as oa
    from advisor.modelspec import ModelChoice, OpenAISettings

    clock = _Clock()
    monkeypatch.setattr(oa, "time", clock)
    choice = ModelChoice(None, "openai:m", OpenAISettings(base_url="http://127.0.0.1:9/v1", **settings))
    return oa.OpenAIBackend(choice, probe=False), clock


def _failing(*errors):
    """send() that raises `errors` in turn, then answers "ok"."""
    left = list(errors)

    def send():
        if left:
            raise left.pop(0)
        return "ok"

    return send


def test_retry_after_in_milliseconds_seconds_or_a_date():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from advisor.backends.openai import retry_after_s

    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({"retry-after": "2"}) == 2.0
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_s({"retry-after": later}) <= 30
    past = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=30), usegmt=True)
    assert retry_after_s({"retry-after": past}) == 0.0
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None
    assert retry_after_s({"retry-after": "1e999"}) == math.inf  # endless: never waited for


def test_window_halves_once_per_burst_of_429s_and_grows_back_one_per_answer():
    from advisor.backends.openai import Window

    w = Window(8)
    burst = [w.enter(lambda: False) for _ in range(8)]
    assert w.enter(lambda: True) is None  # full: a stopping caller does not wait
    w.leave(burst[0], answered=False, throttled=True)
    assert w.limit == 4
    w.leave(burst[1], answered=False, throttled=True)  # sent before the cut: no second cut
    assert w.limit == 4
    for epoch in burst[2:]:
        w.leave(epoch, answered=False)
    for expected in (2, 1, 1):  # each 429 to a request sent after the last cut halves; never below 1
        w.leave(w.enter(lambda: False), answered=False, throttled=True)
        assert w.limit == expected
    for expected in range(2, 9):
        w.leave(w.enter(lambda: False), answered=True)
        assert w.limit == expected
    w.leave(w.enter(lambda: False), answered=True)
    assert w.limit == 8 and w.lowest == 1 and w.busy == 0  # never above max_concurrency


def test_retries_back_off_honour_retry_after_and_stop_within_the_budget(monkeypatch):
    import openai
    import pytest

    from advisor.backends.openai import RunStopped, _GaveUp, _Skipped

    backend, clock = _offline_backend(monkeypatch, retry_budget_s=30)
    never = lambda: False  # noqa: E731
    # 500, a dropped connection, a 429 asking for 3 s: retried, with waits doubling from 0.5 s (less up
    # to a quarter), never shorter than Retry-After.
    send = _failing(_status_error(500), _dropped_error(), _status_error(429, {"retry-after": "3"}))
    assert backend._retrying(send, never, clock.sleep)[0] == "ok"
    assert 0.375 <= clock.slept[0] <= 0.5 and 0.75 <= clock.slept[1] <= 1.0 and clock.slept[2] == 3.0
    assert backend.window.limit == 8 // 2 + 1  # the 429 halved the in-flight window, the answer added one
    # A server that stays at 500: retried until the next wait would pass the 30 s budget.
    clock.slept.clear()
    with pytest.raises(_GaveUp) as gave_up:
        backend._retrying(_failing(*[_status_error(500)] * 50), never, clock.sleep)
    assert gave_up.value.why == "budget" and sum(clock.slept) <= 30 and len(clock.slept) >= 5
    line = str(backend._gave_up(gave_up.value))
    assert "answered 500 after" in line and "openai.retry_budget_s 30" in line and "saved" in line
    # Retry-After longer than the budget: the run stops at once, saying so.
    clock.slept.clear()
    with pytest.raises(_GaveUp) as gave_up:
        backend._retrying(_failing(_status_error(429, {"retry-after": "900"})), never, clock.sleep)
    assert clock.slept == [] and gave_up.value.why == "retry_after"
    stop = backend._gave_up(gave_up.value)
    assert isinstance(stop, RunStopped) and "900 s (Retry-After)" in str(stop)
    # Not worth retrying: a refused key, a bad request.
    for status in (401, 400):
        with pytest.raises(openai.APIStatusError):
            backend._retrying(_failing(_status_error(status)), never, clock.sleep)
    assert clock.slept == []
    # Stopping (an error elsewhere, Ctrl-C) ends the retries: nothing more is sent.
    sent = []
    with pytest.raises(_Skipped):  # stopping during the wait after the first failure
        backend._retrying(lambda: sent.append(1) or _failing(_status_error(500))(), lambda: bool(clock.slept),
                          clock.sleep)
    assert sent == [1]


def test_max_retries_caps_the_tries_and_a_refused_connection_fails_at_start_only(monkeypatch):
    import openai
    import pytest

    from advisor.backends.openai import _GaveUp

    backend, clock = _offline_backend(monkeypatch, max_retries=1)
    with pytest.raises(_GaveUp) as gave_up:
        backend._retrying(_failing(*[_status_error(503)] * 5), lambda: False, clock.sleep)
    assert gave_up.value.why == "max_retries" and len(clock.slept) == 1
    assert "openai.max_retries 1" in str(backend._gave_up(gave_up.value))
    with pytest.raises(openai.APIConnectionError):  # at start: nothing listens at base_url
        backend._retrying(_failing(_refused_error()), lambda: False, clock.sleep, at_start=True)
    assert backend._retrying(_failing(_refused_error()), lambda: False, clock.sleep)[0] == "ok"  # mid-run: a restart
    # A host name that does not resolve is as permanent at start as a refused connection (not 120 s of retries).
    import socket

    unresolved = _refused_error(socket.gaierror(-2, "Name or service not known"))
    slept = len(clock.slept)
    with pytest.raises(openai.APIConnectionError):
        backend._retrying(_failing(unresolved), lambda: False, clock.sleep, at_start=True)
    assert len(clock.slept) == slept


def test_a_second_ctrl_c_exits_at_once_with_one_line(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from advisor.interrupt import AGAIN

    script = tmp_path / "wait.py"
    script.write_text(
        "import time\n"
        "from advisor.interrupt import deferred, handled\n"
        "with handled(), deferred(lambda: None):  # the first Ctrl-C wakes a loop that, here, never looks\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(root)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None  # the first one is the loop's to act on
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and err == AGAIN
