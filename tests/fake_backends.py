"""Backends without a model, for tests of the runner's bookkeeping (never the only test of a lever)."""

from __future__ import annotations

from advisor.types import Backend, Generation, GenerationParams, Request


class FirstOption(Backend):
    """Answers every classification request with its first option."""

    identity = "first-option@1"

    def price_per_second_usd(self) -> float:
        return 0.0

    def score_options(self, requests: list[Request], params: GenerationParams, on_batch=None) -> list[Generation]:
        return [Generation(r.options[0], 5, 1, 0.001, [0.0] * len(r.options)) for r in requests]

    def generate(self, requests: list[Request], params: GenerationParams, on_batch=None) -> list[Generation]:
        raise AssertionError("classification ranks options")
