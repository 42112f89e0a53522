"""A valid results.json (advisor.record.RunRecord, version 2) from a few figures, for tests of its readers."""

from __future__ import annotations

from typing import Any

from advisor.record import SCHEMA_VERSION


def lever_entry(name: str, value: float, *, metric: str = "accuracy", n: int = 100, state: str = "fails",
                family: str = "prompt", rung: float = 0, **extra: Any) -> dict[str, Any]:
    cost = {"setup_usd": 0.0, "per_1k_queries_usd": 0.01, "latency_ms_p50": None, "latency_ms_p95": None,
            "upkeep_usd_per_month": 0.0, "monthly_usd": 1.0, "first_year_usd": 12.0, "tokens_in_mean": 10.0,
            "tokens_out_mean": 1.0, "compute_s_per_query": 0.1, "setup_seconds": 0.0}
    return {"name": name, "lever": name.split("@")[0], "model": "hf:m", "rung": rung, "family": family,
            "artifact": {"identity": f"{name}-a", "backend": "hf:m"}, "n_eval": n,
            "metrics": {metric: {"value": value, "ci_low": value, "ci_high": value}}, "cost": cost,
            "verdict": {"state": state, "lower_bound": value, "upper_bound": value}, **extra}


def record(levers: list[dict[str, Any]], recommended: str | None = None, *, metric: str = "accuracy",
           task: str = "t", kind: str = "classification", **extra: Any) -> dict[str, Any]:
    outcome = "recommend" if recommended else "none"
    return {"schema_version": SCHEMA_VERSION, "task": task, "kind": kind,
            "target": {"metric": metric, "threshold": 0.8, "confidence": 0.95},
            "costs": {"queries_per_month": 1000}, "levers": levers,
            "verdict": {"outcome": outcome, "lever": recommended, "reason": "test"}, **extra}
