"""task.yaml: the pydantic model of a task, and loading it with errors that name file, line, field.

Unknown keys are errors (`extra="forbid"`): a typo must not be silently ignored.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from advisor.checks import CheckSpec, JsonSchemaCheck, check_metrics, name_problem
from advisor.checks.schema import SchemaFileError
from advisor.errors import InputError
from advisor.judge.rubric import Rubric
from advisor.modelspec import Budget, ModelEntry, OpenAISettings, Price, check_scheme
from advisor.origin import (
    Origin,
    Overrides,
    SettingError,
    apply_override,
    as_overrides,
    validation_error,
)

TaskKind = Literal["classification", "extraction", "generation", "qa"]

METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "extraction": ("exact_match", "field_f1", "json_valid"),
    "generation": ("exact_match", "token_f1", "contains"),
    "qa": ("exact_match", "token_f1", "contains"),
}

# Figures the scorer (extraction's micro-averaged fields) and levers (retrieval) report beside the kind's
# metrics: a check may not take their names either.
OTHER_FIGURES = ("field_precision", "field_recall", "field_f1_micro", "retrieval_mrr")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataPaths(_Strict):
    train: Path = Field(description="Training examples (JSONL or CSV); few-shot and LoRA draw only from here.")
    eval: Path = Field(description="Held-out examples: scored, never trained on or shown as few-shot.")
    knowledge: Path | None = Field(
        None, description="Documents for RAG: a folder of .md/.txt or a JSONL of {id, text}."
    )


class PromptVariant(_Strict):
    """Another wording of the prompt; a key left out keeps the default's (`prompt.system`, `prompt.template`)."""

    system: str | None = Field(None, description="System message of this variant (default: prompt.system).")
    template: str | None = Field(None, description="Jinja2 template of this variant (default: prompt.template).")


class PromptSpec(_Strict):
    system: str = Field("", description="System message.")
    template: str = Field(
        "{{ input }}", description="Jinja2 template over the example's fields, e.g. 'Question: {{ input }}'."
    )
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Generation budget per answer.")
    on_overflow: Literal["error", "truncate"] = Field(
        "error", description="A prompt longer than the model's context: 'error' names the item before any "
        "model time is spent; 'truncate' cuts the item's input to fit and records it per item.",
    )
    variants: dict[str, PromptVariant] = Field(
        default_factory=dict,
        description="Other named wordings beside the default; the prompt levers score each on a dev split "
        "carved from train (never eval) and keep the best.",
    )
    dev_size: int = Field(
        40, ge=1, le=10_000,
        description="Train examples held out (seeded by `seed`) to choose between prompt variants and "
        "prompt-search candidates; never shown as demonstrations to what they score.",
    )

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, v: dict[str, PromptVariant]) -> dict[str, PromptVariant]:
        if "default" in v:
            raise ValueError("'default' names the prompt as written above; give the variant another name")
        return v


class Target(_Strict):
    metric: str = Field(description="The metric the decision rests on: one of the kind's metrics, the name of a "
                        "check in `checks`, or pass_all (every check passes).")
    threshold: float = Field(ge=0.0, le=1.0, description="The lowest acceptable value of the metric.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence of the interval shown.")
    rule: Literal["lower_bound", "point"] = Field(
        "lower_bound", description="lower_bound: a lever meets the target when its one-sided lower confidence "
        "bound reaches the threshold; point: when its point estimate does (a quick look).")
    margin: float = Field(0.0, ge=0.0, le=1.0, description="Non-inferiority margin: the comparisons say a cheaper "
                          "lever is within it of the recommended one when the one-sided lower bound of their paired "
                          "difference is above -margin. It never makes a lever that has not shown it meets the "
                          "target the recommendation.")
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
    retrain_hours: float = Field(
        0.0, ge=0, description="Engineer hours per retraining (refresh the data, re-check the eval).")
    reindex_hours: float = Field(
        0.0, ge=0, description="Engineer hours per re-index (refresh the documents, re-check retrieval).")


class AuditSpec(_Strict):
    """`audit:` in task.yaml: how `advise audit` (and the audit at the start of `advise run`) judges the data."""

    near_duplicates: Literal["report", "remove"] = Field(
        "report", description="Train items that nearly copy an eval input: 'report' them, or 'remove' them "
        "from train (and the few-shot pool) the way exact copies always are.")
    strict: bool = Field(False, description="Exit 1 from `advise audit` on any warning (for CI).")
    # 0.85 on single words: one word changed in a 13-word text; below it, on the sample tasks, one changed
    # word in a short question ("a fear of shadows" / "a fear of cholera") made a different question.
    jaccard: float = Field(0.85, gt=0.0, le=1.0, description="Near-duplicate threshold: Jaccard similarity of "
                           "the word-shingle sets (estimated by MinHash LSH, then checked exactly).")
    shingle_words: int = Field(1, ge=1, le=5, description="Words per shingle; 1 suits short texts, larger "
                               "values weigh word order.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (more: slower, more exact).")
    embeddings: bool = Field(False, description="Also compare inputs by cosine similarity of sentence "
                             "embeddings (loads the embedding model).")
    embedding: str = Field("default", description="Embedding model: 'default' (the embedded all-MiniLM-L6-v2) "
                           "or a local sentence-transformers folder.")
    cosine: float = Field(0.95, gt=0.0, le=1.0, description="Near-duplicate threshold on embedding cosine.")
    label_half_width: float = Field(0.15, gt=0.0, lt=0.5, description="A label needs enough eval items for "
                                    "its recall's interval to be at most ± this wide.")
    examples: int = Field(3, ge=1, le=50, description="Examples shown per finding.")
    label_errors: bool | None = Field(None, description="Look for gold answers that are likely simply wrong: for "
                                      "classification, confident learning on out-of-fold probabilities (loads the "
                                      "embedding model); for extraction, field values not in their input or breaking "
                                      "the field's form (no model). Unset: in `advise audit`, not at the start of "
                                      "`advise run` (embedding every train example there would slow each run); "
                                      "true: in both; false: in neither.")


class ScoringSpec(_Strict):
    option_ranking: Literal["auto", "calibrated", "calibrated_prefix", "mean", "sum", "first_token"] = Field(
        "auto", description="Classification: how labels are ranked. auto: each lever row starts from its natural "
        "method (sum for a fine-tuned adapter, its training objective; calibrated for the base model's prompts) and "
        "switches only when its held-out train items (the prompt levers' dev split, an adapter's validation split) "
        "say another is better by an exact McNemar test (Holm-adjusted). Any other value forces that method on "
        "every row. calibrated: log-likelihood minus that after a content-free input (contextual calibration); "
        "calibrated_prefix: the same over the tokens up to where the labels part (a label's spelling after that "
        "point cannot move the prediction); mean: per-token mean; sum: summed log-likelihood (favours short "
        "labels); first_token: the label's first token.",
    )


class ComputeSpec(_Strict):
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="A local model's precision for scoring, generation and LoRA training. auto: bf16 on a "
        "GPU; on a CPU, measured once per machine, model and task (advisor.compute): bf16 only where the CPU has "
        "native bf16 instructions and it is faster and keeps the answers (log-probabilities, labels, training "
        "losses within stated tolerances of fp32), else fp32. fp32 / bf16: forced.")
    threads: Literal["auto"] | Annotated[int, Strict()] = Field(
        "auto", description="CPU threads for a local model. auto: measured before each stage and every minute "
        "within it (one thread against one per core; on a busy machine one thread is often several times "
        "faster). A number: forced.")

    @field_validator("threads")
    @classmethod
    def _threads_positive(cls, v: str | int) -> str | int:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"should be 'auto' or at least 1, got {v}")
        return v


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
    audit: AuditSpec = Field(default_factory=AuditSpec, description="Data audit settings (`advise audit`).")
    scoring: ScoringSpec = ScoringSpec()
    compute: ComputeSpec = Field(default_factory=ComputeSpec, description="How a local model computes on this "
                                 "machine (precision, CPU threads); recorded in results.json `compute`.")
    checks: list[CheckSpec] = Field(
        default_factory=list,
        description="Checks on every output that need no model and no gold answer (json_schema, length, phrases, "
        "tone, language); each is a per-item pass/fail metric named by its `name`, usable as target.metric, "
        "and pass_all is every check passing. With a check as target.metric, eval items may leave out `output`.")
    rubric: Rubric | None = Field(
        None, description="Criteria a judge model grades every output against (advisor.judge.rubric): each a "
        "per-item pass/fail metric, usable as target.metric (decided as far as people back the judge: "
        "advisor.judge.decision); an answer the judge gives that cannot be read is unscored, counted apart.")
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
    # task.yaml's text and overrides, so an error found after loading still names its line.
    _origin: Origin | None = PrivateAttr(None)

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
        # Each check names the key it is about (SettingError), so the error names that key's line.
        if self.kind == "classification" and not self.labels:
            raise SettingError(("kind",), "classification needs 'labels'")
        if self.kind != "classification" and self.labels:
            raise SettingError(("labels",), f"'labels' only applies to classification, not {self.kind}")
        self._check_checks()
        if (self.target.metric not in METRICS[self.kind] and self.target.metric not in self.check_metrics
                and self.target.metric not in self.criterion_metrics):
            checks = (f", or a check's: {', '.join(self.check_metrics)}" if self.checks else
                      " (or declare `checks:` and name one of them, or pass_all)")
            if self.rubric is not None:
                checks += f", or a rubric criterion: {', '.join(self.rubric.names)}"
            raise SettingError(("target", "metric"),
                               f"'{self.target.metric}' does not apply to {self.kind}; "
                               f"choose one of {', '.join(METRICS[self.kind])}{checks}")
        if not self.levers:
            raise SettingError(("levers",), "'levers' is empty: name at least one, e.g. [prompt]")
        names = list(dict.fromkeys(entry.split("@")[0] for entry in self.levers))
        for name in self.lever_options:
            if name not in names:
                raise SettingError(("lever_options", name),
                                   f"options for '{name}', which is not in levers ({', '.join(names)}); "
                                   "add it to levers or remove its options")
        if self.models is not None:
            if not self.models:
                raise SettingError(("models",), "'models' is empty: name at least one, or use 'model:'")
            if "model" in self.model_fields_set:
                raise SettingError(("model",), "give either 'model' or 'models', not both")
            for alias, entry in self.models.items():
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", alias):
                    raise SettingError(("models", alias),
                                       f"model alias '{alias}' must be letters, digits, '.', '_' or '-'")
                try:
                    check_scheme(entry if isinstance(entry, str) else entry.model)
                except ValueError as e:
                    raise SettingError(("models", alias) if isinstance(entry, str) else ("models", alias, "model"),
                                       str(e)) from None
        return self

    def _check_checks(self) -> None:
        """Check names unique and apart from the kind's metrics and the reserved ones; every
        json_schema check's schema read (relative to task.yaml) and checked against 2020-12."""
        problem = name_problem(self.checks, METRICS[self.kind], OTHER_FIGURES)
        if problem is not None:
            i, key, message = problem
            raise SettingError(("checks", i, key), message)
        if self.rubric is not None:
            taken = {*METRICS[self.kind], *OTHER_FIGURES, *check_metrics(self.checks), "pass_all"}
            for i, c in enumerate(self.rubric.criteria):
                if c.name in taken:
                    raise SettingError(("rubric", "criteria", i, "name"),
                                       f"criterion name '{c.name}' is already a metric of this task (a check's, "
                                       "the kind's or pass_all); give the criterion another name")
        for i, check in enumerate(self.checks):
            if isinstance(check, JsonSchemaCheck):
                try:
                    check.resolve(self.base_dir)
                except SchemaFileError as e:
                    raise SettingError(("checks", i, "schema"), str(e)) from None

    @property
    def check_metrics(self) -> list[str]:
        """The per-item metrics the task's checks add (advisor.checks.check_metrics); [] without checks."""
        return check_metrics(self.checks)

    @property
    def gold_metrics(self) -> tuple[str, ...]:
        """The kind's metrics: each needs a gold output per eval item."""
        return METRICS[self.kind]

    @property
    def criterion_metrics(self) -> list[str]:
        """The rubric's criteria (each a per-item metric a judge grades); [] without a rubric."""
        return self.rubric.names if self.rubric is not None else []

    @property
    def target_is_criterion(self) -> bool:
        """Whether target.metric is a rubric criterion (the verdict then reads advisor.judge.decision)."""
        return self.target.metric in self.criterion_metrics

    @property
    def pass_all_uses_judge(self) -> bool:
        """Whether pass_all also needs every rubric criterion passed (`rubric.in_pass_all`)."""
        return self.rubric is not None and self.rubric.in_pass_all

    @property
    def eval_needs_gold(self) -> bool:
        """False when every metric the target needs comes from checks or the rubric (target.metric is a
        check's metric, pass_all or a criterion): eval items may then leave out `output`."""
        return self.target.metric not in self.check_metrics and not self.target_is_criterion

    def where(self, *loc: str | int) -> dict[str, Any]:
        """`file` and `line` of the setting at `loc` (task.yaml's line, or the `--set` that set it),
        for an InputError found after loading; empty for a task not read from a file.

        >>> raise InputError("no such model", **task.where("levers", 2), field="levers")  # doctest: +SKIP
        """
        return self._origin.locate(*loc) if self._origin else {}

    def place(self, error: InputError) -> InputError:
        """`error`, about the setting its `field` names (e.g. "lever_options.rag.k") and found after
        loading, with the file and line where that setting was written; unchanged when it names a
        file already or its field is not a task.yaml key."""
        if error.file is None and error.field and self._origin and \
                error.field.split(".")[0] in type(self).model_fields:
            where = self._origin.locate_field(error.field)
            error.file, error.line = str(where["file"]), where["line"]
        return error

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.base_dir / p

    def data_path(self, key: Literal["train", "eval", "knowledge"]) -> Path:
        """`data.<key>` resolved against task.yaml's folder. Raises InputError naming the `data.<key>`
        line of task.yaml when nothing is there (or, for train and eval, only a folder)."""
        value = getattr(self.data, key)
        if value is None:
            raise InputError("not set", **self.where("data"), field=f"data.{key}")
        path = self.path(value)
        what = "knowledge path" if key == "knowledge" else "data file"
        if not path.exists():
            raise InputError(f"{what} not found: {path}", **self.where("data", key), field=f"data.{key}")
        if key != "knowledge" and not path.is_file():
            raise InputError(f"{path} is a folder; name a .jsonl or .csv file", **self.where("data", key),
                             field=f"data.{key}")
        return path

    @property
    def backend_scheme(self) -> str:
        return self.model.split(":", 1)[0]

    @property
    def model_name(self) -> str:
        return self.model.split(":", 1)[1]


def parse_task(text: str, *, file: Path, overrides: Overrides | None = None) -> Task:
    """Validate task.yaml's text; `overrides` (`{"a.b": value}` or parse_sets' list) replace keys.
    Raises InputError naming task.yaml's line, or the override, of the key at fault."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"malformed YAML: {problem}", file=file, line=line) from None
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of task settings at the top level", file=file, line=1)
    origin = Origin(file, text, as_overrides(overrides))
    for o in origin.overrides:
        apply_override(raw, o)
    _check_lever_names(raw, origin)
    try:
        task = Task.model_validate({**raw, "base_dir": file.parent})
    except ValidationError as e:
        raise validation_error(e, origin, raw, Task) from None
    task._origin = origin
    return task


def _check_lever_names(raw: dict[str, Any], origin: Origin) -> None:
    """A misspelled lever is named as such, before anything it would make fail downstream
    (a `lever_options` entry that no longer matches, say)."""
    from advisor.registry import available

    names, known = raw.get("levers"), available()
    if not isinstance(names, list) or not known:
        return
    for i, entry in enumerate(names):
        name = entry.split("@", 1)[0] if isinstance(entry, str) else entry  # `lever@model` rows
        if isinstance(name, str) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise InputError(f"unknown lever '{name}'.{hint} Available: {', '.join(sorted(known))}",
                             **origin.locate("levers", i), field="levers")


def load_task(path: str | Path, overrides: Overrides | None = None) -> Task:
    """Read and validate task.yaml; raises InputError naming file, line and field.

    `overrides`: `{"target.threshold": 0.9}`, or `advisor.origin.parse_sets(["target.threshold=0.9"])`, whose
    errors name the `--set` argument instead of task.yaml."""
    file = Path(path)
    if not file.is_file():
        raise InputError("task file not found", file=file)
    from advisor.textio import read_text  # UTF-8 with or without a byte-order mark, like every input

    return parse_task(read_text(file), file=file, overrides=overrides)


def task_json_schema() -> dict[str, Any]:
    """The JSON Schema of task.yaml: the task's own keys first, the shared `$defs` last."""
    schema = Task.model_json_schema()
    schema["properties"].pop("base_dir", None)
    schema["title"] = "advise task.yaml"
    defs = schema.pop("$defs", None)
    return {**schema, **({"$defs": defs} if defs is not None else {})}
