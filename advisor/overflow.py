"""Prompts longer than the model's context: found before any model time is spent, never silent.

Each backend knows its context (`Backend.context_window`) and how many tokens a request takes
(`Backend.count_tokens`). A request fits when its prompt tokens plus its answer budget (the
longest option, or `max_new_tokens`) fit the window. What happens when one does not is the
task's choice, `prompt.on_overflow`:

- `error` (the default): one line naming the item, its size and the window, exit 2;
- `truncate`: the item's `input` is cut (its end dropped) until the request fits; the request
  records `context["truncated"] = {"input_chars", "kept_chars"}`, the lever's results count
  them (`details.truncated`) and the scorecard says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from advisor.errors import InputError
from advisor.types import Backend, Example, Request


def answer_budget(backend: Backend, request: Request) -> int:
    """Tokens the answer needs after the prompt: the longest option plus its end, or the budget."""
    counts = backend.option_token_counts  # None: this backend cannot count option tokens
    if request.options and counts is not None:
        return max(counts(list(request.options)).values()) + 1
    return request.max_new_tokens


def needed_tokens(backend: Backend, request: Request) -> int:
    """Positions the request takes: prompt tokens (chat template applied) plus the answer budget."""
    return backend.count_tokens(request) + answer_budget(backend, request)


def context_window(backend: Backend) -> int | None:
    """The backend's context in tokens, None when unknown (then nothing can be checked)."""
    return backend.context_window


def _too_long(example: Example, backend: Backend, needed: int, window: int, lever: str) -> InputError:
    whose = "the prompt" if lever == "prompt" else f"the {lever} lever's prompt"
    return InputError(
        f"{whose} for item '{example.id}' needs {needed:,} tokens (prompt and answer), more than "
        f"the model's context of {window:,} ({backend.identity}); shorten the input or set "
        "prompt.on_overflow: truncate",
        file=example.source, field="input",
    )


def fit_requests(
    backend: Backend,
    examples: list[Example],
    requests: list[Request],
    rebuild: Callable[[Example], Request],
    *,
    on_overflow: str,
    lever: str,
) -> list[Request]:
    """The requests, each checked against the backend's context; overflowing ones cut to fit or refused.

    `rebuild(example)` makes the request for a changed example (the lever's own `requests`).
    Raises InputError naming the first item that does not fit (with `on_overflow="error"`, or
    when even an empty input does not fit).
    """
    window = context_window(backend)
    if window is None:
        return requests
    out = list(requests)
    for i, (ex, req) in enumerate(zip(examples, requests)):
        needed = needed_tokens(backend, req)
        if needed <= window:
            continue
        if on_overflow != "truncate":
            raise _too_long(ex, backend, needed, window, lever)
        out[i] = truncate_to_fit(backend, ex, rebuild, window, lever)
    return out


def _cut(example: Example, n: int) -> Example:
    text = example.input[:n]
    return replace(example, input=text, fields={**example.fields, "input": text})


def truncate_to_fit(
    backend: Backend, example: Example, rebuild: Callable[[Example], Request], window: int, lever: str
) -> Request:
    """The request for the longest head of `example.input` that fits `window` (binary search on
    characters, so any backend's tokenizer works), marked as truncated in its context."""
    full = len(example.input)
    empty = rebuild(_cut(example, 0))
    if needed_tokens(backend, empty) > window:
        raise _too_long(example, backend, needed_tokens(backend, empty), window, lever)
    lo, hi = 0, full  # lo fits, hi does not
    best: Request = empty
    while hi - lo > 1:
        mid = (lo + hi) // 2
        req = rebuild(_cut(example, mid))
        if needed_tokens(backend, req) <= window:
            lo, best = mid, req
        else:
            hi = mid
    best.context["truncated"] = {"input_chars": full, "kept_chars": lo}
    return best


def truncated_count(contexts: list[dict[str, Any]]) -> int:
    """How many items were truncated to fit, from their predictions' contexts."""
    return sum(1 for c in contexts if c.get("truncated"))
