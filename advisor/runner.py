"""Runs the task's levers cheapest first, through one scorer, with every answer cached.

    result = run_task(load_task("sample_tasks/trec/task.yaml"), Path("runs/trec"))
    result.verdict.lever   # e.g. "prompt-few-shot", or None when no lever meets the target
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.costs import LeverCost, lever_cost, token_price
from advisor.data import Dataset
from advisor.events import NoProgress, ProgressFactory
from advisor.execute import Backends, Predictor, run_params
from advisor.plan import RunPlan, preflight
from advisor.provenance import provenance
from advisor.ranking import AUTO, natural_method
from advisor.record import (
    ArtifactRecord,
    AuditRecord,
    CostRecord,
    CurveRecord,
    LeverRecord,
    LeverVerdict,
    MetricRecord,
    RunRecord,
    ScoringRecord,
    TargetRecord,
)
from advisor.registry import load_levers
from advisor.scoring import Scores, parse_output, score
from advisor.spec import Task
from advisor.stats import Interval, bootstrap_statistic, metric_interval
from advisor.store import RunStore
from advisor.types import (
    Artifact,
    Backend,
    Example,
    GenerationParams,
    Lever,
    LeverContext,
    Prediction,
    Request,
    RowAnswers,
)
from advisor.verdict import LeverEvidence, Verdict, decide, eval_groups, trivial_baseline


@dataclass
class LeverResult:
    """One measured row, before the verdict: what the lever declared, its answers, scores and cost."""

    name: str  # the row: `lever` or `lever@alias`
    rung: float
    family: str  # as the lever declares it (advisor.registry.lever_family)
    options: dict[str, Any]
    artifact: Artifact
    predictions: list[Prediction]
    scores: Scores
    metrics: dict[str, Interval]
    cost: LeverCost
    computed: int  # predictions made in this run (the rest came from the store)
    extra: dict[str, Any] = field(default_factory=dict)  # lever, model, classification path (advisor.modelspec)

    def evidence(self) -> LeverEvidence:
        """What the verdict reads of this row (advisor.verdict.decide)."""
        return LeverEvidence(self.name, self.rung, self.family, len(self.predictions), self.metric_records(),
                             CostRecord(**self.cost.as_dict()), self.scores.per_item,
                             [p.output for p in self.predictions], retrieves="index" in self.artifact.info)

    def metric_records(self) -> dict[str, MetricRecord]:
        return {k: MetricRecord(**iv.as_dict()) for k, iv in self.metrics.items()}

    def record(self, verdict: LeverVerdict, model: str) -> LeverRecord:
        """The row of results.json, with the state the verdict gave it. `model`: the task's model label,
        used when the row names none (a single-model task)."""
        extra = dict(self.extra)
        return LeverRecord(
            name=self.name, lever=extra.pop("lever", self.name), model=extra.pop("model", model), rung=self.rung,
            family=self.family, options=self.options,
            artifact=ArtifactRecord(identity=self.artifact.identity, backend=self.artifact.backend.identity,
                                    info=_json(self.artifact.info)),
            n_eval=len(self.predictions), computed_predictions=self.computed, metrics=self.metric_records(),
            cost=CostRecord(**self.cost.as_dict()), details=_json(self.scores.details), verdict=verdict, **extra)


def _json(value: Any) -> Any:
    """`value` as plain JSON (tuples to lists, paths to strings), as results.json stores it."""
    return json.loads(json.dumps(value, default=str))


@dataclass
class RunResult:
    """A finished run: its rows with their answers (in memory), the verdict and the record written."""

    task: Task
    workdir: Path
    levers: list[LeverResult]
    verdict: Verdict
    record: RunRecord
    data: Dataset
    limit: int | None = None

    def to_json(self) -> dict[str, Any]:
        return self.record.to_json()

    def write(self, path: Path) -> Path:
        return self.record.write(path)


def wording_warnings(task: Task, results: list[LeverResult]) -> list[str]:
    """A warning for every row whose prompt wording the run chose on dev instead of the task's own
    (`details.prompt_choice.test`, advisor/choice.py): its eval figure rests on that choice."""
    out = []
    for r in results:
        test = (r.scores.details.get("prompt_choice") or {}).get("test") or {}
        if not test.get("switched"):
            continue
        chosen, metric = test["chosen"], test["metric"]
        p = (test.get("p_values") or {}).get(chosen)
        out.append(f"{r.name}: the wording '{chosen}' replaced the task's own on {test['n']} dev items ({metric} "
                   f"{test['scores'][chosen]:.3f} against {test['scores'][test['default']]:.3f}, {test['rule']}"
                   + (f", p={p:.3g}" if p is not None else "")
                   + "); this row's eval figure is under that wording, the task's own was not scored on eval")
    return out


def add_lever_metrics(scores: Scores, predictions: list[Prediction]) -> None:
    """Per-item figures a lever measured itself (e.g. retrieval recall), beside the shared scorer's.

    A figure is kept only when every item has it, so its mean is over the same items as the rest.
    """
    names = set.intersection(*(set(p.context.get("metrics") or {}) for p in predictions)) if predictions else set()
    for name in sorted(names):
        values = [float(p.context["metrics"][name]) for p in predictions]
        scores.per_item[name] = values
        scores.aggregate[name] = sum(values) / len(values)


class Runner:
    """One task, one run folder. Levers run in rung order; answers come from the store when cached.

    The stages live in their own modules: the plan (`advisor.plan`: the `--limit` rewrite, the data
    and its audit, the rows), the backends and the cached prediction path (`advisor.execute`), the
    provenance (`advisor.provenance`). `plan`: a plan already made for `task` (its task is used).
    """

    def __init__(
        self,
        task: Task,
        workdir: Path,
        *,
        cache_dir: Path | None = None,
        limit: int | None = None,
        progress: ProgressFactory | None = None,
        latency_probe: int = 12,
        params: GenerationParams | None = None,
        console: Any = None,
        plan: RunPlan | None = None,
    ) -> None:
        from advisor.backends.hf import default_cache_dir

        # The data audit runs before any model time is spent; its near-duplicate policy may shrink train.
        self.plan = plan or RunPlan.load(task, limit)
        self.task = self.plan.task  # `--limit` is a quick look: the dev split shrinks with it
        self.data = self.plan.data
        self.audit = self.plan.audit
        self.workdir = workdir
        self.cache_dir = cache_dir or default_cache_dir()
        self.limit = self.plan.limit
        self.progress: ProgressFactory = progress or NoProgress()
        self.latency_probe = latency_probe
        # Classification: the task's option ranking rides in the params (and so in every answer's key);
        # each lever row ranks by its natural method (`row_params`), every method's pick recorded.
        self.params = run_params(self.task, params)
        self.console = console
        self.backends = Backends(self.task, self.cache_dir, self.progress)
        # What this runner creates, so that `close` can take it away again when nothing was computed.
        self._made: list[Path] = []
        self._make_dirs(workdir)
        self._new_store = not (workdir / "advise.sqlite").exists()
        self.store = RunStore(workdir / "advise.sqlite")
        self.predictor = Predictor(self.task, self.data, self.store, self.params, self.progress, latency_probe)

    @property
    def _backend(self) -> Backend | None:
        """The task's model once loaded (tests and benches set their own before running)."""
        return self.backends.base

    @_backend.setter
    def _backend(self, backend: Backend | None) -> None:
        self.backends.base = backend

    def _make_dirs(self, path: Path) -> None:
        self._made += reversed([p for p in (path, *path.parents) if not p.exists()])
        path.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Close the store. A run that computed nothing (it failed at start: a server down, a bad
        option) leaves nothing behind: the store this runner created is removed, and so is each
        folder it made once empty. A store that was there before, or that holds any answer, latency,
        score or finished run, is kept, and so is every other file (a folder is only ever rmdir'ed)."""
        discard = self._new_store and not self.store.holds_work()
        self.store.close()
        if not discard:
            return
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.store.path}{suffix}").unlink(missing_ok=True)
        for folder in reversed(self._made):  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty: something else lives there
                pass

    def base_backend(self) -> Backend:
        return self.backends.base_backend()

    def backend_for(self, choice: Any) -> Backend:
        """The backend of one of the task's models (advisor.modelspec.ModelChoice), made once."""
        return self.backends.backend_for(choice)

    def context(self, lever: Lever, row: Any = None) -> LeverContext:
        workdir = self.workdir / "levers" / (row.name if row else lever.name)
        self._make_dirs(workdir)
        return LeverContext(task=self.task, data=self.data, workdir=workdir, cache_dir=self.cache_dir,
                            base_backend=self.backends.getter(row), console=self.console,
                            progress=self.progress, predictor=self.predictor)

    def lever_options(self, lever: Lever) -> Any:
        return self.plan.lever_options(lever)

    # -- predictions (advisor.execute.Predictor) -------------------------------------------------

    def row_params(self, lever: Lever) -> GenerationParams:
        return self.predictor.row_params(lever)

    def predict(self, lever: Lever, artifact: Artifact, examples: list[Example] | None = None,
                what: str = "predicting", row: str | None = None,
                build: Callable[[list[Example]], list[Request]] | None = None) -> RowAnswers:
        """Predictions for every eval item (cached ones from the store), their keys, and how many
        were new: `Predictor.predict`."""
        return self.predictor.predict(lever, artifact, examples, what, row, build)

    def requests(self, lever: Lever, artifact: Artifact, examples: list[Any],
                 build: Callable[[list[Example]], list[Request]] | None = None) -> list[Request]:
        return self.predictor.requests(lever, artifact, examples, build)

    def latencies(self, lever: Lever, artifact: Artifact, keys: list[str], row: str | None = None,
                  method: str | None = None) -> list[float]:
        """Serving latency of the first N eval requests one at a time: `Predictor.latencies`."""
        return self.predictor.latencies(lever, artifact, keys, row, method)

    def preflight(self, rows: list[Any] | None = None) -> None:
        """Before any lever runs: every template renders and, unless the task truncates, every eval
        item's plain prompt fits the context of every model the run's rows (advisor.plan.Row) use."""
        preflight(self.task, self.data, self.backends.getters(rows))

    def scoring_info(self, results: list[LeverResult], verdict: Verdict) -> dict[str, Any]:
        """How classification options were ranked, and how much the verdict rests on that.

        `option_ranking`: the task's setting (`auto`, or the method it forces; each row's own method
        and why are in its `option_ranking`); `option_tokens`: label -> tokens; `sensitivity`: a
        check, never a choice: per lever row, per other method (advisor/ranking.py ranks the same
        log-likelihoods every way, so this costs no model time), the eval predictions it would
        change (`changed` of `n_eval`), the target metric under it (`metric`, `value`), the row's
        `state` under the task's rule (advisor.verdict.assess, the verdict's own rule) and its `place`
        among the rows (1 = highest target metric). The row's own state is the verdict's. `warnings`: labels
        that differ a lot in length; every row whose state or place would change under another
        method (the verdict rests on the method); rows where most predictions move under
        `calibrated_prefix` (they rest on the labels' spelling).
        """
        from advisor.ranking import answers_by_method
        from advisor.scoring import label_length_warning
        from advisor.verdict import assess

        setting = self.task.scoring.option_ranking
        info: dict[str, Any] = {"option_ranking": setting}
        warnings: list[str] = []
        counts = self._backend.option_token_counts if self._backend else None
        if counts is not None:
            info["option_tokens"] = counts(list(self.task.labels or []))
            warning = label_length_warning(info["option_tokens"], setting)
            if warning:
                warnings.append(warning)
        t = self.task.target
        metric, threshold = t.metric, t.threshold
        golds = [ex.output for ex in self.data.eval]
        groups = eval_groups(self.data)

        def judged(preds: list[Any]) -> tuple[float, str]:  # a row's state under another method
            sc = score(self.task, golds, preds)
            if metric in sc.per_item:
                found = assess(sc.per_item[metric], threshold, t.confidence, t.rule, groups=groups, seed=self.task.seed)
            else:
                from advisor.scoring import macro_f1

                labels = self.task.labels or []
                found = assess(None, threshold, t.confidence, t.rule, n=len(golds), seed=self.task.seed,
                               set_statistic=lambda idx: macro_f1([golds[i] for i in idx], [preds[i] for i in idx],
                                                                  labels))
            return float(sc.aggregate[metric]), found.state

        values = {r.name: float(r.scores.aggregate.get(metric, 0.0)) for r in results}

        def place(name: str, value: float) -> int:
            return 1 + sum(1 for other, v in values.items() if other != name and v > value)

        sensitivity: dict[str, Any] = {}
        for r in results:
            answers = [answers_by_method(p) for p in r.predictions]
            if not answers or any(a is None for a in answers):
                continue  # an API row (no log-likelihoods of every option) or answers stored before
            used = (r.extra.get("option_ranking") or {}).get("method")
            own_value, own_state = values[r.name], verdict.levers[r.name].state
            own_place = place(r.name, own_value)
            row: dict[str, Any] = {}
            moves: list[str] = []
            for method in sorted(set.intersection(*(set(a) for a in answers if a)) - {used}):
                texts = [a[method] for a in answers if a]
                preds = [parse_output(self.task, x) for x in texts]
                value, state = judged(preds)
                changed = sum(x != p.raw for x, p in zip(texts, r.predictions))
                row[method] = {"changed": changed, "n_eval": len(preds), "metric": metric, "value": value,
                               "state": state, "place": place(r.name, value)}
                what = []
                if state != own_state:
                    what.append(f"{state}")
                if row[method]["place"] != own_place:
                    what.append(f"place {row[method]['place']} of {len(values)}")
                if what:
                    moves.append(f"{method} {value:.3f} ({', '.join(what)})")
                if method == "calibrated_prefix" and 2 * changed > len(preds):
                    warnings.append(
                        f"{r.name}: {changed} of {len(preds)} predictions change under calibrated_prefix ({metric} "
                        f"{value:.3f} against {own_value:.3f}): the ranking method, not the prompt alone, decides "
                        "most of this row's answers")
            if moves:
                why = (r.extra.get("option_ranking") or {}).get("reason", "")
                warnings.append(
                    f"{r.name}: the verdict rests on the label-ranking method: {own_state}, place {own_place} of "
                    f"{len(values)} at {metric} {own_value:.3f} under {used}; under " + "; ".join(moves)
                    + (f". Method: {why}" if why else ""))
            if row:
                sensitivity[r.name] = row
        warnings += wording_warnings(self.task, results)
        if sensitivity:
            info["sensitivity"] = sensitivity
        if warnings:
            info["warnings"] = warnings
        return info

    # -- scoring ---------------------------------------------------------------------------------

    def intervals(self, scores: Scores, golds: list[Any], preds: list[Any]) -> dict[str, Interval]:
        conf = self.task.target.confidence
        seed = self.task.seed
        groups = eval_groups(self.data)  # items sharing a passage are resampled together
        out = {m: metric_interval(v, conf, groups=groups, seed=seed) for m, v in scores.per_item.items()}
        for m, value in scores.aggregate.items():
            if m in out:
                continue
            if m == "macro_f1":
                from advisor.scoring import macro_f1

                labels = self.task.labels or []
                out[m] = bootstrap_statistic(
                    len(golds),
                    lambda idx, labels=labels: macro_f1([golds[i] for i in idx], [preds[i] for i in idx], labels),
                    conf, seed=seed,
                )
            else:  # set-level figures without a resampling rule are shown without an interval
                out[m] = Interval(value, value, value, conf)
        return out

    def run_lever(self, lever: Lever, run_id: int, row: Any = None) -> LeverResult:
        """Prepare, predict, score and price one lever; `row` (advisor.modelspec.Row) picks its model."""
        from advisor.modelspec import row_facts

        name = row.name if row else lever.name
        options = self.lever_options(lever)
        artifact = lever.prepare(self.context(lever, row), options)
        predictions, keys, computed = self.predict(lever, artifact, row=name)
        ranking = None
        if self.task.kind == "classification":
            predictions, ranking = self.rank_row(lever, options, artifact, predictions, row)
        golds = [ex.output for ex in self.data.eval]
        preds = [p.output for p in predictions]
        scores = score(self.task, golds, preds)
        add_lever_metrics(scores, predictions)
        scores.details["truncated"] = sum(1 for p in predictions if p.context.get("truncated"))
        self.store.put_item_scores(run_id, name, [ex.id for ex in self.data.eval], scores.per_item)
        self.store.put_run_items(run_id, name, self.data.eval, predictions)  # the report's failures
        metrics = self.intervals(scores, golds, preds)
        method = ranking.get("method") if ranking else None
        cost = lever_cost(artifact, artifact.backend, predictions,
                          self.latencies(lever, artifact, keys, name, method),
                          self.task.costs, price=token_price(artifact.backend, self.cache_dir))
        values = {k: iv.value for k, iv in metrics.items()}
        lever.record_metrics(self.context(lever, row), artifact, values)  # e.g. an adapter store keeps its scores
        scores.details.update(lever.report_details(artifact, values))  # e.g. prompt variants' dev scores
        extra = row_facts(row, artifact.backend, predictions)
        if ranking is not None:
            extra["option_ranking"] = ranking
        from advisor.registry import lever_family

        return LeverResult(name, lever.rung, lever_family(lever), options.model_dump(mode="json"), artifact,
                           predictions, scores, metrics, cost, computed, extra=extra)

    def rank_row(self, lever: Lever, options: Any, artifact: Artifact, predictions: list[Prediction],
                 row: Any = None) -> tuple[list[Prediction], dict[str, Any]]:
        """The row's label-ranking method, and its eval predictions under it (no model time: every
        answer records what each method picks from the same log-likelihoods).

        `scoring.option_ranking: auto`: the lever's natural method (advisor.ranking.natural_method)
        unless the row's held-out train items (`lever.held_out`: the dev split, an adapter's
        validation split; never eval) show another better by advisor.choice.choose_paired. Any
        other setting: that method, `forced`. Returns (predictions, results.json `option_ranking`:
        method, natural, why (natural | switched | forced | unavailable), reason, held_out).
        """
        from advisor.choice import RULE_TOO_FEW, choose_paired
        from advisor.ranking import answers_by_method, with_method
        from advisor.types import OPTION_RANKINGS

        name = row.name if row else lever.name
        natural = natural_method(lever)
        setting = self.task.scoring.option_ranking
        parse = lambda raw: parse_output(self.task, raw)  # noqa: E731
        if any(answers_by_method(p) is None for p in predictions):
            return predictions, {"method": None, "natural": natural, "why": "unavailable", "held_out": None,
                                 "reason": "this model's answers carry no log-likelihood per label (an API "
                                           "model): no ranking method applies"}
        if setting != AUTO:  # `predict` has applied the forced method to every answer already
            return predictions, {
                "method": setting, "natural": natural, "why": "forced", "held_out": None,
                "reason": f"forced by scoring.option_ranking: {setting} (task.yaml or --set)"}
        held = lever.held_out(self.context(lever, row), options, artifact)
        if held is None or not held.examples:
            return [with_method(p, natural, parse) for p in predictions], {
                "method": natural, "natural": natural, "why": "natural", "held_out": None,
                "reason": f"{natural}, the lever's natural method; it has no held-out train items to check it on"}
        n = len(held.examples)
        preds, _, _ = self.predict(lever, artifact, held.examples, f"label ranking on {n} {held.split} items",
                                   row=name, build=held.build)
        answers = [answers_by_method(p) for p in preds]
        methods = [natural, *(m for m in OPTION_RANKINGS if m != natural and all(a and m in a for a in answers))]
        golds = [ex.output for ex in held.examples]
        metric, conf = self.task.target.metric, round(self.task.target.confidence, 10)
        under = {m: [parse(a[m]) for a in answers if a] for m in methods}
        per_method = {m: score(self.task, golds, under[m]) for m in methods}
        if all(metric in sc.per_item for sc in per_method.values()):
            choice = choose_paired(natural, {m: sc.per_item[metric] for m, sc in per_method.items()},
                                   metric=metric, alpha=round(1 - conf, 10), seed=self.task.seed)
        else:  # macro-F1: a set statistic
            from advisor.scoring import macro_f1

            labels = self.task.labels or []

            def stat(m: str) -> Callable[[Any], float]:
                return lambda idx: macro_f1([golds[i] for i in idx], [under[m][i] for i in idx], labels)

            choice = choose_paired(natural, metric=metric, alpha=round(1 - conf, 10), seed=self.task.seed,
                                   set_statistic={m: stat(m) for m in methods}, n=n)
        method = choice.chosen
        if not held.priced:  # answers asked only for this choice are part of setting the lever up
            from baselines.prompt import cost_of

            secs, usd = cost_of(artifact.backend, preds)
            artifact.setup_seconds += secs
            artifact.setup_usd += usd
        scores = ", ".join(f"{m} {v:.3f}" for m, v in choice.scores.items())
        if choice.switched:
            reason = (f"switched from {natural} to {method} on {n} {held.split} items ({scores}; {choice.rule}, "
                      f"p={choice.p_values.get(method)!s})" if choice.p_values.get(method) is not None else
                      f"switched from {natural} to {method} on {n} {held.split} items ({scores}; {choice.rule})")
        elif choice.rule == RULE_TOO_FEW:
            reason = (f"{natural}, the lever's natural method: {n} {held.split} item{'s' * (n != 1)} "
                      f"{'is' if n == 1 else 'are'} too few to test another against it")
        else:
            reason = (f"{natural}, the lever's natural method, kept: no other method was better beyond noise on "
                      f"{n} {held.split} items ({scores}; {choice.rule})")
        record = {"method": method, "natural": natural, "why": "switched" if choice.switched else "natural",
                  "reason": reason, "held_out": {"split": held.split, **choice.as_dict()}}
        return [with_method(p, method, parse) for p in predictions], record

    def score_artifact(self, lever: Lever, artifact: Artifact) -> float:
        """The target metric of an artifact on the eval set (answers cached like any others)."""
        predictions, _, _ = self.predict(lever, artifact)
        scores = score(self.task, [ex.output for ex in self.data.eval], [p.output for p in predictions])
        return scores.aggregate[self.task.target.metric]

    def learning_curves(self, lever_names: list[str], fractions: tuple[float, ...]) -> dict[str, Any]:
        """For each named lever that can (`learning_curve`), metric against train size and a fit."""
        out: dict[str, Any] = {}
        for lever in load_levers(lever_names):
            curve_fn = getattr(lever, "learning_curve", None)
            if curve_fn is None:
                continue
            options = self.lever_options(lever)
            curve = curve_fn(self.context(lever), options, fractions,
                             lambda art, lever=lever: self.score_artifact(lever, art))
            out[lever.name] = curve.as_dict()
        return out

    def run(self, lever_names: list[str] | None = None, task_file: Path | None = None,
            on_lever: Callable[[LeverResult], None] | None = None,
            curve_fractions: tuple[float, ...] | None = None) -> RunResult:
        """Run the levers cheapest first; with `curve_fractions`, also the fine-tuning levers'
        learning curves, which the verdict reads before it advises what to try next."""
        from advisor.plan import plan_rows

        names = lever_names or self.task.levers
        levers = load_levers([n.split("@")[0] for n in names])
        for lever in levers:  # options are checked before any model loads
            self.lever_options(lever)
        rank = {lv.name: i for i, lv in enumerate(levers)}  # rung order, then the task's model order
        rows = sorted(plan_rows(self.task, names, {lv.name: lv for lv in levers}), key=lambda r: rank[r.lever])
        self.preflight(rows)
        run_id = self.store.start_run(self.task.name)
        results: list[LeverResult] = []
        try:
            by_name = {lv.name: lv for lv in levers}
            for row in rows:
                result = self.run_lever(by_name[row.lever], run_id, row)
                results.append(result)
                if on_lever:
                    on_lever(result)
            curves = (self.learning_curves([r.name for r in results], curve_fractions) if curve_fractions
                      else {})
            result = self.judge(results, curves, task_file)
        except KeyboardInterrupt:
            self.store.finish_run(run_id, "interrupted")
            raise
        except Exception:
            self.store.finish_run(run_id, "failed")
            raise
        self.store.finish_run(run_id, "done", result.to_json())
        return result

    def judge(self, results: list[LeverResult], curves: dict[str, Any], task_file: Path | None) -> RunResult:
        """The verdict over the measured rows (advisor.verdict.decide, computed once) and the run record."""
        t = self.task
        target = TargetRecord(metric=t.target.metric, threshold=t.target.threshold, confidence=t.target.confidence,
                              rule=t.target.rule, margin=t.target.margin, need=t.target.need)
        groups = eval_groups(self.data)
        baseline = trivial_baseline(t, self.data, groups)
        curve_records = {k: CurveRecord.model_validate(_json(v)) for k, v in curves.items()}
        verdict = decide(target, [r.evidence() for r in results], baseline,
                         golds=[ex.output for ex in self.data.eval], labels=t.labels,
                         has_knowledge=t.data.knowledge is not None, curves=curve_records, groups=groups, seed=t.seed)
        scoring = None
        if t.kind == "classification":
            scoring = ScoringRecord.model_validate(_json(self.scoring_info(results, verdict)))
        elif wording := wording_warnings(t, results):
            scoring = ScoringRecord(warnings=wording)
        record = RunRecord(
            task=t.name, kind=t.kind, labels=t.labels, target=target, costs=t.costs, eval_limit=self.limit,
            levers=[r.record(verdict.levers[r.name], t.model) for r in results], baseline=baseline.record(),
            verdict=verdict.record, scoring=scoring, learning_curves=curve_records,
            audit=AuditRecord.model_validate(_json(self.audit.as_dict())),
            provenance=provenance(t, self.data, task_file))
        return RunResult(t, self.workdir, results, verdict, record, self.data, self.limit)


def run_task(task: Task, workdir: Path, **kwargs: Any) -> RunResult:
    """Run every lever the task names and return the scored, priced, recommended result."""
    runner = Runner(task, workdir, **kwargs)
    try:
        return runner.run()
    finally:
        runner.close()
