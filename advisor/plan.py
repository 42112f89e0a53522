"""What a run will do, settled before any model loads: the task as run, its data, the audit, and
one row per (lever, model).

    plan = plan_run(load_task("sample_tasks/trec/task.yaml"), limit=40)
    plan.data.eval       # the (limited) eval items, eval inputs removed from train
    plan.audit           # the data audit (its near-duplicate policy already applied to train)
    plan.rows            # advisor.plan.Row per scorecard row, cheapest lever first
    plan.options["rag"]  # each lever's validated `lever_options`

Every check that needs no model runs here (an unknown lever or option, a lever on a model it
cannot use, a template that does not render), so a bad task fails before anything is spent.
`advise run` and `advise run --dry-run` (advisor/estimate.py) plan the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from advisor.data import Dataset, load_dataset
from advisor.errors import InputError
from advisor.modelspec import ModelChoice, resolve_models
from advisor.registry import fine_tunes, load_levers
from advisor.registry import lever_options as validate_options
from advisor.spec import Task
from advisor.types import Backend, Lever


def with_limited_dev(task: Task, limit: int | None) -> Task:
    """`task` with its dev split capped at `limit` items (`--limit`, a quick look), when the run
    chooses anything on dev: a wording among variants, or a classification row's label ranking."""
    if limit is None or task.prompt.dev_size <= limit or not (task.prompt.variants or task.kind == "classification"):
        return task
    return task.model_copy(update={"prompt": task.prompt.model_copy(update={"dev_size": limit})})


def load_data(task: Task, limit: int | None = None, *, audit: bool = True) -> tuple[Dataset, Any]:
    """The run's data and its audit (advisor.audit.AuditReport; None with `audit=False`).

    The loaders' errors come first (exit 2, naming the file and line); then the audit runs, before
    any model time is spent, and its near-duplicate policy (`audit.near_duplicates: remove`) may
    shrink train."""
    data = load_dataset(task, limit=limit)
    if not audit:
        return data, None
    from advisor.audit import apply_near_duplicate_policy, audit_task

    # Label errors only when the task asks for them here (audit.label_errors: true): they embed every
    # train example, a minute on TREC's 5,080 on 2 cores, at the start of every run.
    report = audit_task(task, label_errors=task.audit.label_errors is True)
    return apply_near_duplicate_policy(data, report, task.audit.near_duplicates), report


def lever_options(task: Task, lever: Lever) -> BaseModel:
    """The lever's `lever_options` entry, validated by its own model; errors name the option."""
    return validate_options(lever, task.lever_options.get(lever.name, {}))


def task_lever_options(task: Task) -> dict[str, BaseModel]:
    """Every lever the task names (not only those a run picks with `--lever`), loaded and its
    `lever_options` validated: a misspelt option is refused by run, audit, index and validate alike.
    Raises InputError naming the option."""
    from advisor.registry import load_lever

    names = dict.fromkeys(entry.split("@")[0] for entry in task.levers)  # `lever@model` rows
    return {name: lever_options(task, load_lever(name)) for name in names}


@dataclass(frozen=True)
class Row:
    """One (lever, model) pair: a row of the scorecard. `name` is `lever@alias` with several models."""

    lever: str
    model: ModelChoice
    name: str


def plan_rows(task: Any, lever_names: list[str], levers_by_name: dict[str, Any]) -> list[Row]:
    """Expand `lever` / `lever@alias` entries into rows; errors (exit 2) name the bad entry.

    `lever@alias` runs the lever on that model; a plain `lever` runs on every model that can run
    it (a fine-tuning lever only on `hf:` models). Rows keep the order of `lever_names`.
    """
    models = resolve_models(task)
    by_alias = {m.alias: m for m in models}
    several = task.models is not None and len(models) > 1
    rows: list[Row] = []
    for entry in dict.fromkeys(lever_names):
        name, _, alias = entry.partition("@")
        lever = levers_by_name[name]
        # An entry of task.yaml's `levers` is named with its line (a caller's own names, without).
        where = task.where("levers", task.levers.index(entry)) if entry in task.levers else {}
        refusal = lever.check_task(task)  # e.g. lora-curated on a task that is not classification
        if refusal:
            raise InputError(refusal, **where, field="levers")
        if alias:
            if alias not in by_alias:
                known = ", ".join(a for a in by_alias if a) or "none (add a `models:` section)"
                raise InputError(f"'{entry}' names model '{alias}', which `models:` does not define; "
                                 f"defined: {known}", **where, field="levers")
            chosen = [by_alias[alias]]
        else:
            chosen = [m for m in models if not (fine_tunes(lever) and m.scheme != "hf" and several)]
        for m in chosen:
            if fine_tunes(lever) and m.scheme != "hf":
                what = f"'{m.label}' is {m.spec}" if m.label != m.spec else f"{m.spec} is an API model"
                how = (f"run it on an hf: model, e.g. {name}@<hf alias>" if task.models is not None else
                       f"set model: hf:<name>, or list models under `models:` and write {name}@<hf alias>")
                raise InputError(f"lever '{name}' fine-tunes a model's weights, which needs a local 'hf:' model; "
                                 f"{what} ({how})", **where, field="levers")
            rows.append(Row(name, m, f"{name}@{m.alias}" if several else name))
    return rows


@dataclass
class RunPlan:
    """A task as it will run: the task (dev split capped by `limit`), its data and audit, and, once
    levers are chosen (`with_levers`), the levers in rung order, their options and the rows."""

    task: Task
    data: Dataset
    audit: Any = None  # advisor.audit.AuditReport; None when planned without an audit (a dry run)
    limit: int | None = None
    levers: dict[str, Lever] = field(default_factory=dict)  # by name, cheapest rung first
    options: dict[str, BaseModel] = field(default_factory=dict)  # by lever name
    rows: list[Row] = field(default_factory=list)  # rung order, then the order the levers were named

    @classmethod
    def load(cls, task: Task, limit: int | None = None, *, audit: bool = True) -> RunPlan:
        """The data part of a plan: `--limit` applied to eval and dev, the dataset and its audit."""
        task = with_limited_dev(task, limit)  # `--limit` is a quick look: the dev split shrinks with it
        data, report = load_data(task, limit, audit=audit)
        return cls(task, data, report, limit)

    def lever_options(self, lever: Lever) -> BaseModel:
        """The lever's validated options (validated once per plan)."""
        if lever.name not in self.options:
            self.options[lever.name] = lever_options(self.task, lever)
        return self.options[lever.name]

    def with_levers(self, lever_names: list[str] | None = None) -> RunPlan:
        """The same data with the rows of these entries (`lever` or `lever@alias`; default the
        task's `levers`): every lever loaded and its options checked before any model loads, rows
        sorted by rung, then in the order named."""
        names = list(lever_names or self.task.levers)
        named = task_lever_options(self.task)  # the levers not run too: a typo is an error however the run is cut
        levers = load_levers([n.split("@")[0] for n in names])
        # Checked before any model loads; a `--lever` the task does not name is checked here.
        options = {lv.name: named[lv.name] if lv.name in named else lever_options(self.task, lv) for lv in levers}
        rank = {lv.name: i for i, lv in enumerate(levers)}
        rows = sorted(plan_rows(self.task, names, {lv.name: lv for lv in levers}), key=lambda r: rank[r.lever])
        return replace(self, levers={lv.name: lv for lv in levers}, options=options, rows=rows)


def plan_run(task: Task, lever_names: list[str] | None = None, limit: int | None = None, *,
             audit: bool = True) -> RunPlan:
    """The whole plan of a run: `RunPlan.load(task, limit)` with the rows of `lever_names`."""
    return RunPlan.load(task, limit, audit=audit).with_levers(lever_names)


def preflight(task: Task, data: Dataset, backends: Iterable[Callable[[], Backend]]) -> None:
    """Before any lever runs: every template renders (a null or missing field is named) and,
    unless the task truncates, every eval item's plain prompt fits the context of each of
    `backends` (one getter per model the run's rows use; only called when needed)."""
    from advisor.overflow import fit_requests
    from advisor.prompting import check_templates, make_request, render_messages

    check_templates(task, data.train + data.eval)
    if task.prompt.on_overflow != "error":
        return
    reqs = [make_request(task, ex, render_messages(task, ex)) for ex in data.eval]
    for get in backends:
        fit_requests(get(), data.eval, reqs, lambda ex: make_request(task, ex, render_messages(task, ex)),
                     on_overflow="error", lever="prompt")
