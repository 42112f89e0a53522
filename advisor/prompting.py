"""Turning a task's prompt spec and an example into chat messages and a Request.

Shared by every lever, so a prompt renders the same way whichever lever sends it.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2

from advisor.errors import InputError
from advisor.spec import Task
from advisor.types import Example, Request

_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def answer_text(task: Task, output: Any) -> str:
    """The text a model should produce for `output` (also the LoRA training target)."""
    if task.kind == "extraction":
        return json.dumps(output, ensure_ascii=False, separators=(", ", ": "))
    return str(output)


def render_user(task: Task, example: Example) -> str:
    try:
        return _JINJA.from_string(task.prompt.template).render(**example.fields)
    except jinja2.UndefinedError as e:
        raise InputError(
            f"template uses a field this example lacks ({e.message})", file=example.source, field="prompt.template"
        ) from None
    except jinja2.TemplateSyntaxError as e:
        raise InputError(f"template syntax: {e.message}", field="prompt.template") from None


def render_messages(
    task: Task, example: Example, shots: list[Example] = (), context: str | None = None  # type: ignore[assignment]
) -> list[dict[str, str]]:
    """System message, few-shot turns, then the example; `context` (retrieved text) goes before it."""
    system = task.prompt.system
    if task.kind == "classification" and task.labels and "{labels}" not in system:
        system = (system + "\n" if system else "") + "Answer with one label: " + ", ".join(task.labels) + "."
    messages = [{"role": "system", "content": system}] if system else []
    for shot in shots:
        messages.append({"role": "user", "content": render_user(task, shot)})
        messages.append({"role": "assistant", "content": answer_text(task, shot.output)})
    user = render_user(task, example)
    if context:
        user = f"Context:\n{context}\n\n{user}"
    messages.append({"role": "user", "content": user})
    return messages


def make_request(task: Task, example: Example, messages: list[dict[str, str]], **context: Any) -> Request:
    options = list(task.labels) if task.kind == "classification" and task.labels else None
    return Request(
        example_id=example.id,
        messages=messages,
        options=options,
        max_new_tokens=task.prompt.max_new_tokens,
        context=context,
    )


def check_templates(task: Task, examples: list[Example]) -> None:
    """Render the template over every example, so a missing field fails before any model runs."""
    for ex in examples:
        render_user(task, ex)
