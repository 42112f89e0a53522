"""Turning a task's prompt spec and an example into chat messages and a Request.

Shared by every lever, so a prompt renders the same way whichever lever sends it.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import jinja2
import jinja2.meta

from advisor.errors import InputError
from advisor.spec import Task
from advisor.types import Example, Request

_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
# A JSON null is missing, not the text "None": it reaches the template as an undefined value, so
# printing it fails like an absent field, while `{{ x | default("...") }}`, `{% if x is defined %}`
# and `{% if x is none %}` handle it explicitly (Jinja2's own undefined machinery decides, not a
# search of the template text).
CONTENT_FREE = "N/A"  # the content-free input of contextual calibration (Zhao et al. 2021)


class NullField(jinja2.StrictUndefined):
    """A field whose value is JSON null: undefined to the template, named as null in the error."""

    __slots__ = ()


_JINJA.tests["none"] = lambda value: value is None or isinstance(value, NullField)


def _template_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: NullField(name=k, hint=f"'{k}' is null (JSON null counts as missing; a template that allows it "
                                  f"says so, e.g. {{{{ {k} | default('') }}}})") if v is None else v
        for k, v in fields.items()
    }


def answer_text(task: Task, output: Any) -> str:
    """The text a model should produce for `output` (also the LoRA training target)."""
    if task.kind == "extraction":
        return json.dumps(output, ensure_ascii=False, separators=(", ", ": "))
    return str(output)


def render_user(task: Task, example: Example) -> str:
    """The example's user turn: `prompt.template` rendered over its fields.

    Raises InputError (naming the example's file:line and the field) when the template prints a
    field the example lacks or holds as JSON null.
    """
    return _render(task, example.fields, example.source)


def _render(task: Task, fields: dict[str, Any], source: str) -> str:
    try:
        return _JINJA.from_string(task.prompt.template).render(**_template_fields(fields))
    except jinja2.UndefinedError as e:
        missing = re.search(r"'([^']+)' is (null|undefined)", e.message or "")
        is_null = bool(missing and missing.group(2) == "null")
        raise InputError(
            e.message if is_null else f"template uses a field this example lacks ({e.message})", file=source,
            field=missing.group(1) if missing else "prompt.template",
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
        content_free=content_free_messages(task, messages) if options else None,
    )


def content_free_messages(task: Task, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """`messages` with the last user turn rendered from "N/A" in every field: the same system
    message, shots and template, no item content (and no retrieved context)."""
    fields = {"input": CONTENT_FREE}
    for name in jinja2.meta.find_undeclared_variables(_JINJA.parse(task.prompt.template)):
        fields[name] = CONTENT_FREE
    return [*messages[:-1], {"role": "user", "content": _render(task, fields, "content-free input")}]


def check_templates(task: Task, examples: list[Example]) -> None:
    """Render the template over every example, so a missing field fails before any model runs."""
    for ex in examples:
        render_user(task, ex)


# -- prompt variants and the dev split ---------------------------------------------------------


def variant_names(task: Task) -> list[str]:
    """'default' (the prompt as written) first, then the task's named variants in file order."""
    return ["default", *task.prompt.variants]


def with_prompt(task: Task, *, system: str | None = None, template: str | None = None) -> Task:
    """A copy of `task` whose prompt has this system message and/or template (None keeps the task's)."""
    update = {k: v for k, v in (("system", system), ("template", template)) if v is not None}
    return task.model_copy(update={"prompt": task.prompt.model_copy(update=update)}) if update else task


def with_variant(task: Task, name: str) -> Task:
    """`task` with the named prompt variant in place of its default wording ('default': unchanged).

    Raises KeyError for a name the task does not define.
    """
    if name == "default":
        return task
    v = task.prompt.variants[name]
    return with_prompt(task, system=v.system, template=v.template)


def dev_split(task: Task, train: list[Example], size: int | None = None) -> tuple[list[Example], list[Example]]:
    """(dev, pool): `size` train examples (default `prompt.dev_size`) held out to choose prompts on.

    Seeded by `task.seed` and nested: the dev split of size n is the first n of one fixed
    permutation, so a smaller dev budget scores a subset of a larger one. At most half of
    train goes to dev, so demonstrations remain. The pool (train minus dev, in file order) is
    where demonstrations come from: a dev item is never shown to the candidate it scores.
    Eval is never touched: choices are made on dev only.
    """
    n = min(size or task.prompt.dev_size, len(train) // 2)
    order = list(range(len(train)))
    random.Random(f"dev-split:{task.seed}").shuffle(order)
    held = set(order[:n])
    dev = [train[i] for i in order[:n]]
    pool = [ex for i, ex in enumerate(train) if i not in held]
    return dev, pool


def check_variants(task: Task, examples: list[Example]) -> None:
    """Render every prompt variant's template over the examples (`advise validate` and before a run)."""
    for name in task.prompt.variants:
        variant = with_variant(task, name)
        try:
            check_templates(variant, examples)
        except InputError as e:
            raise InputError(e.message, file=e.file, line=e.line, field=f"prompt.variants.{name}.template") from None
