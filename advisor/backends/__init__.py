"""Model backends, chosen by the task's `model:` scheme (`hf:` local, `openai:` hosted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.errors import InputError
from advisor.modelspec import ModelChoice, resolve_models, setting_field
from advisor.spec import Task
from advisor.types import Backend


def make_backend(task: Task, cache_dir: Path | None = None, on_status: Any = None) -> Backend:
    """The backend for `task.model`; loading happens here, so call it lazily. `on_status(text)`: a
    context manager that shows what a long step (measuring precision) is doing."""
    return make_backend_for(task, resolve_models(task)[0], cache_dir, on_status=on_status)


def make_backend_for(task: Task, choice: ModelChoice, cache_dir: Path | None = None, budget: object = None,
                     probe: bool = True, on_status: Any = None) -> Backend:
    """The backend of one of the task's models. `budget` (a RunBudget) is shared by a run's API models.

    An error about the model (`model`) or one of its settings (`openai.<key>`) names the task.yaml
    key it was written under: the model's `models:` entry, the `openai:` section or `model:`."""
    try:
        return _make(task, choice, cache_dir, budget, probe, on_status)
    except InputError as e:
        if e.file is None and e.field is not None and (e.field == "model" or e.field.startswith("openai.")):
            e.field = setting_field(task, choice, e.field.partition(".")[2] or None)
        raise


def _make(task: Task, choice: ModelChoice, cache_dir: Path | None, budget: object, probe: bool,
          on_status: Any = None) -> Backend:
    if choice.scheme == "hf":
        from advisor.backends.hf import HFBackend, default_cache_dir, load_base, precision_identity
        from advisor.compute import setup_hf

        loaded = load_base(choice.name, cache_dir)
        price = task.costs.gpu_hour_usd if loaded.device == "cuda" else task.costs.cpu_hour_usd
        # Precision and threads are measured on this machine (advisor.compute), not assumed.
        precision, threads = setup_hf(task, loaded, cache_dir or default_cache_dir(), on_status)
        return HFBackend(loaded, identity=precision_identity(loaded.identity, precision.precision),
                         model=loaded.in_precision(precision.precision), usd_per_hour=price,
                         precision=precision, threads=threads)
    if choice.scheme == "openai":
        from advisor.backends.openai import OpenAIBackend, RunBudget
        from advisor.pricing import resolve_price

        price, source = resolve_price(choice, task.prices)
        if task.budget.max_usd is not None and price is None:
            raise InputError(f"budget.max_usd needs a price for {choice.spec}: add one under `prices:` "
                             "or the model's `price:`", field="budget.max_usd")
        if budget is None:
            budget = RunBudget(task.budget.max_requests, task.budget.max_usd)
        return OpenAIBackend(choice, budget=budget, price=price, price_source=source,  # type: ignore[arg-type]
                             probe=probe, cache_dir=cache_dir)
    raise InputError(f"unknown model scheme '{choice.scheme}:'; use 'hf:' or 'openai:'", field="model")
