"""Cost model v1: what a lever costs to set up, per query, and to keep running.

Every figure comes from measurements of this run: compute seconds and tokens
per prediction, training or indexing wall time, and prices from the task file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from advisor.spec import Costs
from advisor.stats import percentile
from advisor.types import Artifact, Backend, Prediction


@dataclass
class LeverCost:
    setup_usd: float
    per_1k_queries_usd: float | None  # None: the model's price is unknown (never shown as 0)
    latency_ms_p50: float
    latency_ms_p95: float
    upkeep_usd_per_month: float
    monthly_usd: float | None  # per-query cost at the stated volume plus upkeep
    first_year_usd: float | None  # setup plus twelve months: the figure levers are ranked by
    tokens_in_mean: float
    tokens_out_mean: float
    compute_s_per_query: float
    setup_seconds: float

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def lever_cost(
    artifact: Artifact, backend: Backend, predictions: list[Prediction], latencies_ms: list[float], costs: Costs
) -> LeverCost:
    n = max(len(predictions), 1)
    compute = sum(p.seconds for p in predictions) / n
    tokens_usd = getattr(backend, "token_cost_usd", lambda p: 0.0)(predictions)  # None: price unknown
    per_query = None if tokens_usd is None else compute * backend.price_per_second_usd() + tokens_usd / n
    monthly = None if per_query is None else per_query * costs.queries_per_month + artifact.upkeep_usd_per_month
    return LeverCost(
        setup_usd=artifact.setup_usd,
        per_1k_queries_usd=None if per_query is None else per_query * 1000,
        latency_ms_p50=percentile(latencies_ms, 50),
        latency_ms_p95=percentile(latencies_ms, 95),
        upkeep_usd_per_month=artifact.upkeep_usd_per_month,
        monthly_usd=monthly,
        first_year_usd=None if monthly is None else artifact.setup_usd + 12 * monthly,
        tokens_in_mean=sum(p.tokens_in for p in predictions) / n,
        tokens_out_mean=sum(p.tokens_out for p in predictions) / n,
        compute_s_per_query=compute,
        setup_seconds=artifact.setup_seconds,
    )
