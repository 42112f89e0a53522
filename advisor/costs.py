"""Cost model: what a lever costs to set up, per query, a month, to keep running, and in its first year.

Local compute is priced from tokens, not from wall time: wall time follows whatever else
the machine is doing (the same TREC prompt lever measured $0.0019 and $0.0542 per 1,000
queries on a quiet and a busy machine, 28x). A per-token compute time is calibrated once
per machine, model and device (`token_price`, from process CPU time on a CPU), cached
with its date, and each query is priced as the prompt tokens it computed and the tokens
it generated, times that time, times the device's $/hour. Prompt tokens read from a cache
of a prefix shared with other prompts (`tokens_in_cached`: a system message or fixed
few-shot turns, computed once) are not charged again: a deployment with prefix caching
(vLLM, llama.cpp's server) serves them the same way (PRICE_BASIS_LOCAL).
The measured seconds stay beside it in the cost record.
"""

from __future__ import annotations

import os
import platform
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advisor.compute import cores, read_machine_cache, write_machine_cache
from advisor.data import stable_hash
from advisor.spec import Costs
from advisor.stats import percentile
from advisor.types import Artifact, Backend, GenerationParams, Prediction, Request

CALIBRATION_REPEATS = 3  # the fastest of three: load only ever adds time
CALIBRATION_METHOD = "cpu-time-1-thread/v1"  # part of the cache key: a new method recalibrates
# What a per-query price assumes, stated in each cost record (results.json `price_basis`).
PRICE_BASIS_LOCAL = ("computed prompt tokens and generated tokens x calibrated compute seconds per token x "
                     "$/hour; prompt tokens read from a shared-prefix cache (tokens_in_cached) are not charged, "
                     "as in a deployment with prefix caching (vLLM, llama.cpp server)")
PRICE_BASIS_MEASURED = "measured compute seconds x $/hour, plus the provider's token price where there is one"


@dataclass(frozen=True)
class TokenPrice:
    """Calibrated compute time per token on one machine, model and device."""

    seconds_per_prompt_token: float  # compute seconds per prompt token computed
    seconds_per_output_token: float  # compute seconds per generated token
    usd_per_second: float  # the device's $/hour / 3600
    calibrated: str  # ISO date of the calibration
    key: str  # machine, model and device it holds for

    def seconds(self, tokens_in: float, tokens_out: float) -> float:
        """Compute seconds of `tokens_in` computed prompt tokens and `tokens_out` generated ones."""
        return tokens_in * self.seconds_per_prompt_token + tokens_out * self.seconds_per_output_token

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_CAL_TEXT = ("A careful reader checks every figure twice before it goes into the report, "
             "because a wrong number costs more than a late one. ")


def _fastest(backend: Backend, request: Request) -> tuple[float, int, int]:
    """(seconds, tokens in, tokens out) of the fastest of CALIBRATION_REPEATS runs of `request`.

    On a CPU the time is this process's CPU time with torch on one thread, divided by the
    machine's cores (perfect scaling assumed): a thread that waits for a core accrues no
    CPU time, so a busy machine does not inflate it as it inflates wall time (measured:
    a calibration by wall time on a machine at load 15 priced the TREC prompt lever at
    $1.71 per 1,000 queries). On a GPU, wall time (accelerators are not time-shared here).
    """
    on_cpu = backend.device == "cpu"
    torch: Any = None
    if on_cpu:
        try:
            import torch
        except ImportError:  # a CPU backend without torch: its own threads, timed by process CPU time
            torch = None
    # Divided by the machine's cores, not by the threads torch runs now: the thread count is chosen
    # from the machine's load (advisor.compute.ThreadChoice) and a price must not follow the load.
    threads = cores() if on_cpu else 1
    running = torch.get_num_threads() if torch is not None else 1
    chooser = getattr(backend, "threads", None)  # the run's thread choice waits meanwhile
    best: tuple[float, int, int] | None = None
    try:
        if torch is not None:
            torch.set_num_threads(1)
        with chooser.paused() if chooser is not None else nullcontext():
            for _ in range(CALIBRATION_REPEATS):
                cpu0 = time.process_time()
                g = backend.generate([request], GenerationParams(max_new_tokens=request.max_new_tokens,
                                                                 batch_size=1))[0]
                seconds = (time.process_time() - cpu0) / threads if on_cpu else g.seconds
                if best is None or seconds < best[0]:
                    best = (seconds, g.tokens_in, g.tokens_out)
    finally:
        if torch is not None:
            torch.set_num_threads(running)
    assert best is not None
    return best


def calibration_key(backend: Backend) -> str:
    # An adapter merged into the base ("base+version") costs what the base costs per token.
    model = backend.identity.split("+", 1)[0]
    machine = [platform.node(), platform.machine(), platform.processor(), os.cpu_count()]
    return stable_hash([machine, model, backend.device, CALIBRATION_METHOD])[:16]


def token_price(backend: Backend, cache_dir: Path) -> TokenPrice | None:
    """The backend's per-token compute price, calibrated once and cached in `cache_dir`.

    None for a backend priced per token by its provider (price_per_second_usd() == 0).
    Calibration times a long prompt with one generated token (prompt cost) and a short
    prompt with many generated tokens (generation cost), fastest of CALIBRATION_REPEATS.
    Delete `cache_dir/compute_calibration.json` to calibrate again.
    """
    usd_per_second = backend.price_per_second_usd()
    # A served model (priced per server hour) runs elsewhere: this process's CPU time says nothing of it.
    if usd_per_second <= 0 or backend.remote:
        return None
    key = calibration_key(backend)
    path = cache_dir / "compute_calibration.json"
    cached = read_machine_cache(path)
    if key in cached:
        return TokenPrice(**{**cached[key], "usd_per_second": usd_per_second})
    long = Request("calibration-prompt", [{"role": "user", "content": _CAL_TEXT * 12}], max_new_tokens=1)
    short = Request("calibration-output", [{"role": "user", "content": "Write a long story about a lighthouse."}],
                    max_new_tokens=48)
    s_long, in_long, _ = _fastest(backend, long)
    per_in = s_long / max(in_long, 1)
    s_short, in_short, out_short = _fastest(backend, short)
    per_out = max(s_short - in_short * per_in, 0.0) / max(out_short, 1)
    price = TokenPrice(per_in, per_out, usd_per_second, time.strftime("%Y-%m-%d"), key)
    cached[key] = {k: v for k, v in price.as_dict().items() if k != "usd_per_second"}
    write_machine_cache(path, cached)
    return price


@dataclass
class LeverCost:
    setup_usd: float
    per_1k_queries_usd: float | None  # None: the model's price is unknown (never shown as 0)
    latency_ms_p50: float | None  # None: no latency probe was sent (--latency-probe 0), never 0
    latency_ms_p95: float | None
    upkeep_usd_per_month: float
    monthly_usd: float | None  # per-query cost at the stated volume plus upkeep
    first_year_usd: float | None  # setup plus twelve months: the figure levers are ranked by
    tokens_in_mean: float  # prompt tokens per query, all of them
    tokens_out_mean: float  # generated tokens per query
    compute_s_per_query: float  # measured wall seconds (shown beside the price, not priced)
    setup_seconds: float
    priced_compute_s_per_query: float = 0.0  # computed tokens x calibrated seconds per token: what is priced
    upkeep_engineer_usd_per_month: float = 0.0  # engineer hours of retraining / re-indexing
    calibration: dict[str, Any] = field(default_factory=dict)
    tokens_in_cached_mean: float = 0.0  # of tokens_in_mean, read from a shared-prefix cache
    price_basis: str = ""  # what the per-query price assumes, in words

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def upkeep_engineer_usd(artifact: Artifact, costs: Costs) -> float:
    """Engineer hours a month of keeping the artifact fresh, in USD.

    A retraining (artifact with an adapter) costs `retrain_hours` of refreshing data and
    re-checking the eval, a re-index (artifact with an index) `reindex_hours`.
    """
    hours = 0.0
    if "adapter" in artifact.info:
        hours += costs.retrain_per_month * costs.retrain_hours
    if "index" in artifact.info:
        hours += costs.reindex_per_month * costs.reindex_hours
    return hours * costs.engineer_hour_usd


def lever_cost(
    artifact: Artifact, backend: Backend, predictions: list[Prediction], latencies_ms: list[float], costs: Costs,
    price: TokenPrice | None = None,
) -> LeverCost:
    """Setup, per-query, monthly, upkeep and first-year cost of one lever, in USD.

    With `price` (local models), compute is priced from the prompt tokens each query computed
    (tokens_in - tokens_in_cached) and its generated tokens x calibrated seconds per token;
    without it, from measured seconds x the backend's $/second plus its token cost (which
    prices cached input tokens as the backend's price says: `backend.price_basis`).
    """
    n = max(len(predictions), 1)
    compute = sum(p.seconds for p in predictions) / n
    tokens_in = sum(p.tokens_in for p in predictions) / n
    tokens_cached = sum(p.tokens_in_cached for p in predictions) / n
    tokens_out = sum(p.tokens_out for p in predictions) / n
    prep = sum(float(p.context.get("prep_seconds", 0.0)) for p in predictions) / n
    per_query: float | None
    if price is not None:
        # Retrieval time is not model tokens; it stays measured (it is small beside the model's).
        priced = price.seconds(tokens_in - tokens_cached, tokens_out) + prep
        per_query = priced * price.usd_per_second
        basis = PRICE_BASIS_LOCAL
    else:
        priced = compute
        tokens_usd = backend.token_cost_usd(predictions)  # None: price unknown
        per_query = None if tokens_usd is None else compute * backend.price_per_second_usd() + tokens_usd / n
        basis = backend.price_basis or PRICE_BASIS_MEASURED
    engineer = upkeep_engineer_usd(artifact, costs)
    upkeep = artifact.upkeep_usd_per_month + engineer
    monthly = None if per_query is None else per_query * costs.queries_per_month + upkeep
    return LeverCost(
        setup_usd=artifact.setup_usd,
        per_1k_queries_usd=None if per_query is None else per_query * 1000,
        latency_ms_p50=percentile(latencies_ms, 50) if latencies_ms else None,
        latency_ms_p95=percentile(latencies_ms, 95) if latencies_ms else None,
        upkeep_usd_per_month=upkeep,
        monthly_usd=monthly,
        first_year_usd=None if monthly is None else artifact.setup_usd + 12 * monthly,
        tokens_in_mean=tokens_in,
        tokens_out_mean=tokens_out,
        compute_s_per_query=compute,
        setup_seconds=artifact.setup_seconds,
        priced_compute_s_per_query=priced,
        upkeep_engineer_usd_per_month=engineer,
        calibration=price.as_dict() if price else {},
        tokens_in_cached_mean=tokens_cached,
        price_basis=basis,
    )


def first_year_at(cost: dict[str, Any], queries_per_month: float) -> float | None:
    """First-year cost in USD of a results.json cost record at another monthly volume."""
    per_1k = cost.get("per_1k_queries_usd")
    if per_1k is None:
        return None
    return cost["setup_usd"] + 12 * (cost.get("upkeep_usd_per_month", 0.0) + per_1k / 1000 * queries_per_month)


