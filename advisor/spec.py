"""task.yaml: the pydantic model of a task, and loading it with errors that name file, line, field.

Unknown keys are errors (`extra="forbid"`): a typo must not be silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from advisor.errors import InputError
from advisor.modelspec import Budget, ModelEntry, OpenAISettings, Price, check_scheme

TaskKind = Literal["classification", "extraction", "generation", "qa"]

METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "extraction": ("exact_match", "field_f1", "json_valid"),
    "generation": ("exact_match", "token_f1", "contains"),
    "qa": ("exact_match", "token_f1", "contains"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataPaths(_Strict):
    train: Path = Field(description="Training examples (JSONL or CSV); few-shot and LoRA draw only from here.")
    eval: Path = Field(description="Held-out examples: scored, never trained on or shown as few-shot.")
    knowledge: Path | None = Field(
        None, description="Documents for RAG: a folder of .md/.txt or a JSONL of {id, text}."
    )


class PromptSpec(_Strict):
    system: str = Field("", description="System message.")
    template: str = Field(
        "{{ input }}", description="Jinja2 template over the example's fields, e.g. 'Question: {{ input }}'."
    )
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Generation budget per answer.")


class Target(_Strict):
    metric: str = Field(description="The metric the decision rests on (depends on kind).")
    threshold: float = Field(ge=0.0, le=1.0, description="The lowest acceptable value of the metric.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence of the interval shown.")
    need: str = Field("", description="The business need that sets the threshold, in plain words.")


class Costs(_Strict):
    queries_per_month: int = Field(100_000, ge=0, description="Expected production volume.")
    cpu_hour_usd: float = Field(0.10, ge=0, description="Price of one hour of this CPU machine.")
    gpu_hour_usd: float = Field(2.50, ge=0, description="Price of one GPU hour.")
    engineer_hour_usd: float = Field(120.0, ge=0, description="Loaded cost of an engineer hour.")
    curation_hours: float = Field(
        0.0, ge=0, description="Engineer hours to curate training data (charged to fine-tuning)."
    )
    retrain_per_month: float = Field(0.0, ge=0, description="Retraining runs a month (upkeep).")
    reindex_per_month: float = Field(0.0, ge=0, description="Knowledge re-index runs a month (upkeep).")


class Task(_Strict):
    """A task: what to do, on which data, judged by which metric against which threshold."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Identifier, used in paths.")
    description: str = ""
    kind: TaskKind
    labels: list[str] | None = Field(None, description="Classification: the closed set of labels.")
    data: DataPaths
    prompt: PromptSpec = PromptSpec()
    target: Target
    levers: list[str] = Field(
        default_factory=lambda: ["prompt", "prompt-few-shot"],
        description="Levers to run; they run cheapest first.",
    )
    lever_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-lever options, validated by each lever."
    )
    model: str = Field("hf:smollm2-135m-instruct", description="'hf:<name or folder>' or 'openai:<model>'.")
    seed: int = 0
    costs: Costs = Costs()
    # Several models: a row per (lever, model); see advisor/modelspec.py.
    models: dict[str, str | ModelEntry] | None = Field(
        None, description="Several models by alias ('hf:...'/'openai:...' or a mapping with settings); "
        "levers run on each, or on one with 'lever@alias'."
    )
    openai: OpenAISettings | None = Field(None, description="Settings for every 'openai:' model of the task.")
    budget: Budget = Field(Budget(), description="Limits on what one run may send to API models.")
    prices: dict[str, Price] = Field(
        default_factory=dict, description="Prices by model name, overriding the shipped table."
    )

    # Where task.yaml lives; data paths are relative to it. Not part of the file.
    base_dir: Path = Field(Path("."), exclude=True)

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if len(v) < 2:
                raise ValueError(f"needs at least 2 labels, got {len(v)}")
            dupes = sorted({x for x in v if v.count(x) > 1})
            if dupes:
                raise ValueError(f"duplicate labels: {', '.join(dupes)}")
        return v

    @field_validator("model")
    @classmethod
    def _model_scheme(cls, v: str) -> str:
        scheme = v.split(":", 1)[0]
        if ":" not in v or scheme not in {"hf", "openai"}:
            raise ValueError(f"'{v}' must start with 'hf:' or 'openai:'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Task:
        if self.kind == "classification" and not self.labels:
            raise ValueError("classification needs 'labels'")
        if self.kind != "classification" and self.labels:
            raise ValueError(f"'labels' only applies to classification, not {self.kind}")
        if self.target.metric not in METRICS[self.kind]:
            raise ValueError(
                f"target.metric '{self.target.metric}' does not apply to {self.kind}; "
                f"choose one of {', '.join(METRICS[self.kind])}"
            )
        if not self.levers:
            raise ValueError("'levers' is empty: name at least one, e.g. [prompt]")
        for name in self.lever_options:
            if name not in {entry.split("@")[0] for entry in self.levers}:
                raise ValueError(f"lever_options names '{name}', which is not in levers")
        if self.models is not None:
            if not self.models:
                raise ValueError("'models' is empty: name at least one, or use 'model:'")
            if "model" in self.model_fields_set:
                raise ValueError("give either 'model' or 'models', not both")
            for alias, entry in self.models.items():
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", alias):
                    raise ValueError(f"model alias '{alias}' must be letters, digits, '.', '_' or '-'")
                check_scheme(entry if isinstance(entry, str) else entry.model)
        return self

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.base_dir / p

    @property
    def backend_scheme(self) -> str:
        return self.model.split(":", 1)[0]

    @property
    def model_name(self) -> str:
        return self.model.split(":", 1)[1]


def _yaml_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line of a pydantic error location in the YAML source."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for k, v in node.value:
                if k.value == key:
                    found = (k, v)
                    break
            if found is None:
                return node.start_mark.line + 1
            node = found[1] if key != loc[-1] else found[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1 if node is not None else None


def parse_task(text: str, *, file: Path, overrides: dict[str, Any] | None = None) -> Task:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"malformed YAML: {problem}", file=file, line=line) from None
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of task settings at the top level", file=file, line=1)
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        return Task.model_validate({**raw, "base_dir": file.parent})
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(x for x in err["loc"] if x not in {"function-after[_consistent(), Task]"})
        field = ".".join(str(x) for x in loc) or None
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `advise schema` lists the keys)"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise InputError(msg + more, file=file, line=_yaml_line(text, loc), field=field) from None


def load_task(path: str | Path, overrides: dict[str, Any] | None = None) -> Task:
    """Read and validate task.yaml; raises InputError naming file, line and field."""
    file = Path(path)
    if not file.is_file():
        raise InputError("task file not found", file=file)
    return parse_task(file.read_text(encoding="utf-8"), file=file, overrides=overrides)


def task_json_schema() -> dict[str, Any]:
    schema = Task.model_json_schema()
    schema["properties"].pop("base_dir", None)
    schema["title"] = "advise task.yaml"
    return schema
