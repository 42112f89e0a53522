"""The run record: one typed, versioned document per run, written once, read by every reader.

`results.json` is the JSON serialisation of a `RunRecord`. Every stage of a run writes its own
part (the levers' measures, the verdict, the audit, provenance); `advise show`, `advise report`,
`advise compare`, the terminal scorecard and the report read it through `load_record`, which
validates it (pydantic v2, `extra="forbid"`: a damaged or foreign file is a one-line error, exit
code 2) and upgrades older files. Per-item answers and scores stay in the run's SQLite store
(advisor.store), as Inspect keeps samples apart from its `EvalLog` header.

Versions:
- 1: every results.json written before the record was typed (no `schema_version` key): the
  verdict under `recommendation` with a `states` map, each lever's state, bounds and
  `items_needed` flat on the lever, `meets_target` and `confidence` per lever.
- 2 (this module): `verdict` (with its `outcome`) replaces `recommendation`; the rule and margin
  live in `target`; each lever carries `verdict` {state, lower_bound, upper_bound,
  more_items_needed, no_better_than_baseline}; the artifact's own facts are under `artifact.info`.
  `_upgrade_v1` is the only code that knows the old shape.

    record = load_record(Path("runs/trec-question-type"))
    record.verdict.outcome, record.verdict.lever
    [lv.verdict.state for lv in record.levers]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from advisor.errors import InputError
from advisor.spec import Costs, TaskKind
from advisor.textio import JSONError, loads, read_text

SCHEMA_VERSION = 2
RESULTS_FILE = "results.json"

State = Literal["meets", "fails", "undecided"]
Family = Literal["prompt", "retrieval", "fine-tuning"]
Outcome = Literal["recommend", "undecided", "none"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricRecord(_Record):
    """A figure with its two-sided interval at `target.confidence` (equal ends: no interval)."""

    value: float
    ci_low: float
    ci_high: float


class TargetRecord(_Record):
    """What the decision rests on: the metric, its threshold, the confidence and the rule."""

    metric: str
    threshold: float
    confidence: float
    rule: Literal["lower_bound", "point"] = "lower_bound"
    margin: float = 0.0  # non-inferiority margin: decides only between levers that meet
    need: str = ""


class CostRecord(_Record):
    """One lever's cost in USD (advisor.costs.lever_cost); None: unknown, never shown as 0."""

    setup_usd: float
    per_1k_queries_usd: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    upkeep_usd_per_month: float
    monthly_usd: float | None
    first_year_usd: float | None
    tokens_in_mean: float
    tokens_out_mean: float
    compute_s_per_query: float
    setup_seconds: float
    priced_compute_s_per_query: float = 0.0
    upkeep_engineer_usd_per_month: float = 0.0
    calibration: dict[str, JsonValue] = Field(default_factory=dict)
    tokens_in_cached_mean: float = 0.0
    price_basis: str = ""


class PriceRecord(_Record):
    """The price an API row was charged at (advisor.pricing.describe)."""

    input_per_1m_usd: float | None = None
    output_per_1m_usd: float | None = None
    cached_input_per_1m_usd: float | None = None
    server_hour_usd: float | None = None
    source: str = ""


class ArtifactRecord(_Record):
    """What a lever prepared: its identity, the backend it runs on, and its own facts."""

    identity: str
    backend: str  # the backend's identity (model and settings)
    info: dict[str, JsonValue] = Field(default_factory=dict)


class LeverVerdict(_Record):
    """One lever's state against the target (advisor.verdict.assess)."""

    state: State
    lower_bound: float  # one-sided, at target.confidence
    upper_bound: float
    more_items_needed: int | None = None  # eval items to add before the state settles (undecided only)
    no_better_than_baseline: bool = False
    # With a rubric criterion as target.metric: which evidence the bounds come from (PPI++, the judge only,
    # or why the judge's grades decide nothing), in one sentence (advisor.judge.decision.assess_criterion).
    basis: str | None = None


class LeverRecord(_Record):
    name: str  # the row: `lever` or `lever@alias`
    lever: str
    model: str  # the model's label
    rung: float
    family: Family
    options: dict[str, JsonValue] = Field(default_factory=dict)
    artifact: ArtifactRecord
    n_eval: int
    computed_predictions: int = 0  # answers computed in this run (the rest came from the store)
    metrics: dict[str, MetricRecord]
    cost: CostRecord
    price: PriceRecord | None = None
    token_estimate: str | None = None
    classification_path: str | None = None
    unmappable: int | None = None
    # An API model's answers that were not a label, and how the path was chosen (advisor.measure).
    off_label: dict[str, JsonValue] | None = None
    classification_choice: dict[str, JsonValue] | None = None
    option_ranking: dict[str, JsonValue] | None = None  # method, natural, why, reason, held_out
    details: dict[str, JsonValue] = Field(default_factory=dict)  # per_label, confusion, per_field, …
    verdict: LeverVerdict

    @property
    def retrieves(self) -> bool:
        """Whether the lever retrieves per query (its artifact holds an index)."""
        return "index" in self.artifact.info


class Comparison(_Record):
    """`lever` − `against` on the target metric over the same eval items."""

    lever: str
    against: str
    metric: str
    difference: MetricRecord  # two-sided interval at target.confidence
    test: str  # the test behind p_value (exact McNemar, cluster bootstrap, …)
    p_value: float | None = None  # two-sided
    significantly_better: bool
    significantly_worse: bool = False
    non_inferior: bool
    message: str


class BreakEven(_Record):
    cheaper: str  # cheaper to set up and keep
    dearer: str
    queries_per_month: float | None  # None: the dearer never becomes cheaper
    message: str


class VerdictRecord(_Record):
    """The decision (advisor.verdict.decide). `outcome`: recommend (lever meets the target), undecided
    (none is shown to, and at least one might: more eval items settle it), none (every lever fails)."""

    outcome: Outcome
    lever: str | None = None
    reason: str
    closest: str | None = None
    next_step: str | None = None
    ranking: list[str] = Field(default_factory=list)  # rows by first-year cost
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    break_even: list[BreakEven] = Field(default_factory=list)


class BaselineRecord(_Record):
    name: str
    answer: JsonValue = None
    metrics: dict[str, MetricRecord]


class SensitivityCell(_Record):
    """One row under another label-ranking method (a check, never a choice)."""

    changed: int
    n_eval: int
    metric: str
    value: float
    state: State | None = None
    place: int | None = None


class ScoringRecord(_Record):
    option_ranking: str | None = None
    option_tokens: dict[str, int] | None = None
    sensitivity: dict[str, dict[str, SensitivityCell]] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class CurvePointRecord(_Record):
    fraction: float
    n_train: int
    metric: float
    adapter: str | None = None
    train_seconds: float | None = None


class CurveRecord(_Record):
    metric: str
    threshold: float
    points: list[CurvePointRecord]
    model: str | None = None
    params: dict[str, JsonValue] | None = None
    flat: bool = False
    n_needed: int | None = None
    message: str = ""
    extra: dict[str, JsonValue] = Field(default_factory=dict)


class FindingRecord(_Record):
    check: str
    severity: str
    count: int
    message: str
    examples: list[dict[str, JsonValue]] = Field(default_factory=list)


class AuditRecord(_Record):
    findings: list[FindingRecord] = Field(default_factory=list)
    counts: dict[str, JsonValue] = Field(default_factory=dict)
    strict: bool = False


class DataProvenance(_Record):
    train: str | None = None
    eval: str | None = None
    knowledge: str | None = None
    n_train: int
    n_eval: int
    leakage_removed: list[str] = Field(default_factory=list)
    near_leakage_removed: list[str] = Field(default_factory=list)


class GitState(_Record):
    commit: str | None = None
    dirty: bool | None = None


class Provenance(_Record):
    model: str
    task_file: str | None = None
    task_sha256: str
    prompt_sha256: str
    data: DataProvenance
    versions: dict[str, str] = Field(default_factory=dict)
    git: GitState = Field(default_factory=GitState)
    platform: str = ""
    argv: list[str] = Field(default_factory=list)
    created: str


class CheckRecord(_Record):
    """One of the task's `checks:` (advisor.checks) as the run applied it: its pass/fail metric and, in
    words, what it requires (e.g. "min_words 15, max_words 90")."""

    name: str  # the per-item pass/fail metric it adds
    kind: str  # json_schema | length | phrases | tone | language
    rule: str
    metrics: list[str]  # every metric it adds: its name, and for json_schema strict_json and lenient_json


class RunRecord(_Record):
    """results.json. Per-item rows are in the run's advise.sqlite (advisor.store.RunStore)."""

    schema_version: Literal[2] = SCHEMA_VERSION
    # The run's id in the folder's advise.sqlite (`runs.id`): every reader takes this run's per-item rows,
    # never "the latest run". None in files written before it was recorded.
    run_id: int | None = None
    task: str  # the task's name
    kind: TaskKind
    labels: list[str] | None = None
    target: TargetRecord
    costs: Costs  # the stated assumptions every dollar figure rests on
    eval_limit: int | None = None
    levers: list[LeverRecord]
    baseline: BaselineRecord | None = None
    verdict: VerdictRecord
    scoring: ScoringRecord | None = None
    learning_curves: dict[str, CurveRecord] = Field(default_factory=dict)
    checks: list[CheckRecord] = Field(default_factory=list)  # the task's checks; pass_all when any
    audit: AuditRecord | None = None  # None: a run from before the audit
    provenance: Provenance | None = None
    # How local models computed on this machine (advisor.compute): cpu, cpu_flags, and per model identity
    # its device, scoring precision choice (precision, why, reason, measured) and thread choices. None: no local
    # model ran, or a run from before the choice existed.
    compute: dict[str, JsonValue] | None = None
    # With a rubric: lever -> criterion -> judge rate over scored items, unscored count, human grades, and
    # where people graded some outputs, kappa (advisor.judge.agreement) and the PPI interval (advisor.judge.ppi).
    judge: dict[str, JsonValue] | None = None
    # With a rubric: per criterion, the judge's pass rate against output length per row (advisor.judge.bias).
    judge_bias: dict[str, JsonValue] | None = None

    def lever(self, name: str) -> LeverRecord:
        """The row called `name`. Raises KeyError when there is none."""
        for lv in self.levers:
            if lv.name == name:
                return lv
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def write(self, path: Path) -> Path:
        """Write results.json atomically (a reader never sees half a file, and a write that fails, on a
        full disk say, leaves the file that was there). Raises OSError as the filesystem does."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False))
            tmp.replace(path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return path


def results_schema() -> dict[str, Any]:
    """The JSON Schema of results.json (`advise schema --results`)."""
    return RunRecord.model_json_schema()


# -- reading -----------------------------------------------------------------------------------


def results_path(run: Path) -> Path:
    """`run` itself when it is a file, else the results.json in the run folder `run`."""
    return run if run.is_file() else run / RESULTS_FILE


def parse_record(data: Any, *, file: Path | None = None) -> RunRecord:
    """A RunRecord from decoded results.json, upgrading version 1.

    Raises InputError naming the file and the first bad field when it is not an advise results
    file, is of an unknown version, or is damaged.
    """
    if not isinstance(data, dict) or not isinstance(data.get("levers"), list):
        raise InputError("not an advise results file (no 'levers' list)", file=file, field="levers")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"results schema_version must be a whole number, got {version!r} (a damaged file?)",
                         file=file, field="schema_version")
    if version == 1:
        data = _upgrade_v1(data, file)
    elif version != SCHEMA_VERSION:
        raise InputError(f"results schema_version {version!r} is not one this advise reads (1 or "
                         f"{SCHEMA_VERSION}){'; upgrade advise' if version > SCHEMA_VERSION else ''}", file=file, field="schema_version")
    try:
        return RunRecord.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(f"damaged results file: {msg}", file=file, field=where) from None


def load_record(run: Path) -> RunRecord:
    """The record of the run folder (or results.json file) `run`.

    Raises InputError (exit 2) naming the file (and line) when it is missing, not UTF-8, broken JSON,
    not an advise results file, of an unknown version, or damaged.
    """
    path = results_path(run)
    if not path.is_file():
        raise InputError(f"no {RESULTS_FILE} here; run 'advise run TASK' (or with --out DIR) first", file=path)
    try:
        data = loads(read_text(path))
    except JSONError as e:
        raise InputError(f"broken JSON: {e.msg}{e.where()}", file=path, line=e.lineno or None) from None
    return parse_record(data, file=path)


# -- version 1 ---------------------------------------------------------------------------------


def _family_from_rung(rung: float) -> str:
    # Version 1 rows written before levers declared a family: the rung bands the levers had then.
    return "prompt" if rung < 2 else "retrieval" if rung < 3 else "fine-tuning"


def _upgrade_v1(old: dict[str, Any], file: Path | None) -> dict[str, Any]:
    """Version 1 (no schema_version) → 2. The only code that knows the old shape."""
    for key in ("task", "kind", "target", "recommendation"):
        if key not in old:
            raise InputError(f"not an advise results file (no '{key}')", file=file, field=key)
    rec = dict(old["recommendation"] or {})
    states = rec.get("states") or {}
    target = dict(old["target"])
    target.setdefault("rule", rec.get("rule", "point"))  # files from before the rule was recorded used the point rule
    target.setdefault("margin", rec.get("margin", 0.0))
    target["need"] = target.get("need") or ""  # older files wrote null for no stated need
    model = (old.get("provenance") or {}).get("model", "")
    levers = []
    for lv in old["levers"]:
        if not isinstance(lv, dict):
            raise InputError("damaged results file: a lever entry is not an object", file=file, field="levers")
        lv = dict(lv)
        metric = (lv.get("metrics") or {}).get(target["metric"]) or {}
        state = lv.pop("state", None) or states.get(lv.get("name")) or (
            "meets" if lv.get("meets_target") else "fails")
        verdict = {"state": state,
                   "lower_bound": lv.pop("lower_bound", metric.get("ci_low", 0.0)),
                   "upper_bound": lv.pop("upper_bound", metric.get("ci_high", 0.0)),
                   "more_items_needed": lv.pop("items_needed", None),
                   "no_better_than_baseline": bool(lv.pop("no_better_than_baseline", False))}
        for gone in ("meets_target", "confidence"):
            lv.pop(gone, None)
        art = dict(lv.get("artifact") or {})
        lv["artifact"] = {"identity": str(art.pop("identity", "")), "backend": str(art.pop("model", "")),
                          "info": art}
        lv.setdefault("lever", lv.get("name", "").split("@")[0])
        lv.setdefault("model", model)
        lv.setdefault("family", _family_from_rung(float(lv.get("rung", 99))))
        lv["verdict"] = verdict
        levers.append(lv)
    lever_names = [lv.get("name") for lv in levers]
    outcome = ("recommend" if rec.get("lever") else
               "undecided" if any(lv["verdict"]["state"] == "undecided" for lv in levers) else "none")
    comparisons = []
    for c in rec.get("comparisons") or []:
        c = dict(c)
        p = c.pop("mcnemar_p", None)
        comparisons.append({**c, "test": "exact McNemar" if p is not None else "paired bootstrap", "p_value": p})
    scoring = old.get("scoring")
    if scoring is not None:
        scoring = dict(scoring)
        metric = target["metric"]
        scoring["sensitivity"] = {
            row: {m: {"changed": cell.get("changed", 0), "n_eval": cell.get("n_eval", 0), "metric": metric,
                      "value": cell.get(metric, 0.0), "state": cell.get("state"), "place": cell.get("place")}
                  for m, cell in methods.items()}
            for row, methods in (scoring.get("sensitivity") or {}).items()}
    new: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "task": old["task"], "kind": old["kind"], "labels": old.get("labels"),
        "target": target,
        "costs": old.get("costs") or {"queries_per_month": old.get("queries_per_month", 100_000)},
        "eval_limit": old.get("eval_limit"),
        "levers": levers,
        "baseline": old.get("baseline"),
        "verdict": {"outcome": outcome, "lever": rec.get("lever"), "reason": rec.get("reason", ""),
                    "closest": rec.get("closest"), "next_step": rec.get("next_step"),
                    "ranking": rec.get("ranking") or lever_names, "reasons": rec.get("reasons") or [],
                    "notes": rec.get("notes") or [], "comparisons": comparisons,
                    "break_even": rec.get("break_even") or []},
        "scoring": scoring,
        "learning_curves": old.get("learning_curves") or {},
        "audit": old.get("audit"),
        "provenance": old.get("provenance"),
    }
    return new
