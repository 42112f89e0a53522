"""Model backends, chosen by the task's `model:` scheme (`hf:` local, `openai:` hosted)."""

from __future__ import annotations

from pathlib import Path

from advisor.errors import InputError
from advisor.spec import Task
from advisor.types import Backend


def make_backend(task: Task, cache_dir: Path | None = None) -> Backend:
    """The backend for `task.model`; loading happens here, so call it lazily."""
    if task.backend_scheme == "hf":
        from advisor.backends.hf import HFBackend, load_base

        loaded = load_base(task.model_name, cache_dir)
        price = task.costs.gpu_hour_usd if loaded.device == "cuda" else task.costs.cpu_hour_usd
        return HFBackend(loaded, usd_per_hour=price)
    raise InputError(
        f"backend '{task.backend_scheme}:' is not available yet; use 'hf:smollm2-135m-instruct'",
        field="model",
    )
