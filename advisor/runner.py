"""Runs the task's levers cheapest first, through one scorer, with every answer cached.

    result = run_task(load_task("sample_tasks/trec/task.yaml"), Path("runs/trec"))
    result.verdict.lever   # e.g. "prompt-few-shot", or None when no lever meets the target
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.costs import lever_cost, token_price
from advisor.data import Dataset
from advisor.errors import DiskFullError, InputError, is_disk_full, size_text
from advisor.events import NoProgress, ProgressFactory
from advisor.execute import Backends, Predictor, run_params
from advisor.measure import (
    LeverResult,
    add_lever_metrics,
    check_records,
    choose_path,
    intervals,
    plain_json,
    rank_row,
    ranking_sensitivity,
    row_facts,
    wording_warnings,
)
from advisor.plan import RunPlan, preflight
from advisor.provenance import provenance
from advisor.record import (
    AuditRecord,
    CurveRecord,
    RunRecord,
    ScoringRecord,
    TargetRecord,
)
from advisor.registry import load_levers
from advisor.scoring import score
from advisor.spec import Task
from advisor.store import RunStore
from advisor.types import (
    Artifact,
    Backend,
    Example,
    GenerationParams,
    Lever,
    LeverContext,
    Request,
    RowAnswers,
)
from advisor.verdict import Verdict, decide, eval_groups, trivial_baseline


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
        # (row, criterion) -> example_id -> the k grades of rubric.samples > 1 (this run's, in memory)
        self.judge_samples: dict[tuple[str, str], dict[str, list[float | None]]] = {}
        # row -> example_id -> pass_all over checks and criteria (rubric.in_pass_all; None: a criterion unscored)
        self.judge_pass_all: dict[str, dict[str, float | None]] = {}
        self.backends = Backends(self.task, self.cache_dir, self.progress)
        # What this runner creates, so that `close` can take it away again when nothing was computed.
        self._made: list[Path] = []
        self._make_dirs(workdir)
        self._new_store = not (workdir / "advise.sqlite").exists()
        try:
            self.store = RunStore(workdir / "advise.sqlite")  # the folder's lock: one run at a time
        except Exception:  # refused (another run holds the folder, unwritable): remove only the empty folders made
            self._remove_made(False)
            raise
        self.predictor = Predictor(self.task, self.data, self.store, self.params, self.progress, latency_probe)

    @property
    def _backend(self) -> Backend | None:
        """The task's model once loaded (tests and benches set their own before running)."""
        return self.backends.base

    @_backend.setter
    def _backend(self, backend: Backend | None) -> None:
        self.backends.base = backend

    def compute_info(self) -> dict[str, Any] | None:
        """results.json `compute`: how the local models computed (advisor.compute): the CPU, each
        precision choice and why, and the thread counts chosen; None when no local model ran."""
        from advisor.compute import cpu_flags, cpu_model

        backends = [b for b in [self.backends.base, *self.backends._by_model.values()] if b is not None]
        local = [b for b in backends if hasattr(b, "compute_info")]
        if not local:
            return None
        info: dict[str, Any] = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "models": {}}
        for b in local:
            info["models"][b.identity] = b.compute_info()
        return plain_json(info)

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
        for backend in [self.backends.base, *self.backends._by_model.values()]:
            threads = getattr(backend, "threads", None)  # advisor.compute.ThreadChoice
            if threads is not None:
                threads.restore()  # the process's thread count as it was before the run
        if discard:
            self._remove_made(True)

    def _remove_made(self, store_too: bool) -> None:
        """Remove the store this runner created (`store_too`; with its lock file) and every folder it
        made, once empty."""
        store = self.workdir / "advise.sqlite"
        for suffix in ("", "-wal", "-shm", "-journal", ".lock") if store_too else ():
            Path(f"{store}{suffix}").unlink(missing_ok=True)
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
                what: str = "predicting", row_name: str | None = None,
                build: Callable[[list[Example]], list[Request]] | None = None) -> RowAnswers:
        """Predictions for every eval item (cached ones from the store), their keys, and how many
        were new: `Predictor.predict`."""
        return self.predictor.predict(lever, artifact, examples, what, row_name, build)

    def requests(self, lever: Lever, artifact: Artifact, examples: list[Any],
                 build: Callable[[list[Example]], list[Request]] | None = None) -> list[Request]:
        return self.predictor.requests(lever, artifact, examples, build)

    def latencies(self, lever: Lever, artifact: Artifact, keys: list[str], row_name: str | None = None,
                  method: str | None = None) -> list[float]:
        """Serving latency of the first N eval requests one at a time: `Predictor.latencies`."""
        return self.predictor.latencies(lever, artifact, keys, row_name, method)

    def preflight(self, rows: list[Any] | None = None) -> None:
        """Before any lever runs: every template renders and, unless the task truncates, every eval
        item's plain prompt fits the context of every model the run's rows (advisor.plan.Row) use;
        and the rubric's judge has its key and answers at its server (`judge_model`), so a missing
        key or a wrong base_url fails at start, not after the levers' work."""
        preflight(self.task, self.data, self.backends.getters(rows))
        if self.task.rubric is not None:
            self.judge_model()

    # -- scoring ---------------------------------------------------------------------------------

    def run_lever(self, lever: Lever, run_id: int, row: Any = None) -> LeverResult:
        """Prepare, predict, score and price one lever; `row` (advisor.modelspec.Row) picks its model."""
        name = row.name if row else lever.name
        options = self.lever_options(lever)
        artifact = lever.prepare(self.context(lever, row), options)
        path_choice = None
        if self.task.kind == "classification":  # an API model's path, chosen on held-out items first
            path_choice = choose_path(self.task, self.predictor, lever, self.context(lever, row), options,
                                      artifact, name)
        predictions, keys, computed = self.predict(lever, artifact, row_name=name)
        ranking = None
        if self.task.kind == "classification":
            predictions, ranking = rank_row(self.task, self.predictor, lever, self.context(lever, row), options,
                                            artifact, predictions, name)
        golds = [ex.output for ex in self.data.eval]
        preds = [p.output for p in predictions]
        scores = score(self.task, golds, preds, [p.raw for p in predictions])
        add_lever_metrics(scores, predictions)
        scores.details["truncated"] = sum(1 for p in predictions if p.context.get("truncated"))
        ids = [ex.id for ex in self.data.eval]
        self.store.put_item_scores(run_id, name, ids, scores.per_item)
        self.store.put_item_reasons(run_id, name, ids, scores.check_reasons)
        self.store.put_run_items(run_id, name, self.data.eval, predictions)  # the report's failures
        metrics = intervals(self.task, self.data, scores, golds, preds)
        if self.task.rubric is not None:
            self.grade_outputs(run_id, name, row, predictions, scores, metrics)
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
        if path_choice is not None:
            extra["classification_choice"] = path_choice
        return LeverResult(name, lever.rung, lever.family, options.model_dump(mode="json"), artifact,
                           predictions, scores, metrics, cost, computed, extra=extra)

    judge_backend: Any = None  # the rubric's judge (tests may set their own)

    def judge_model(self) -> Any:
        """The rubric's judge backend, made once: its key read and its server probed (GET /models)
        on first use. Raises InputError / BackendError (exit 2) naming task.yaml's `rubric.judge`
        line for the judge's own settings, and saying that it is the judge's server that failed."""
        if self.judge_backend is None:
            from advisor.backends import make_backend_for
            from advisor.errors import BackendError
            from advisor.modelspec import ModelChoice

            rubric = self.task.rubric
            assert rubric is not None
            choice = ModelChoice(None, rubric.judge_spec, rubric.judge_settings(self.task.openai))
            try:
                self.judge_backend = make_backend_for(self.task, choice, self.cache_dir)
            except InputError as e:  # about the judge's settings: named at the rubric's judge line
                if e.file is None:
                    e.field = "rubric.judge"
                    self.task.place(e)
                raise
            except BackendError as e:
                raise BackendError(f"the rubric's judge ({rubric.judge_spec}): {e}") from None
        return self.judge_backend

    def grade_outputs(self, run_id: int, name: str, row: Any, predictions: list[Any], scores: Any,
                      metrics: dict[str, Any]) -> None:
        """Grade a lever's outputs against the task's rubric (advisor.judge.grading), cached in the store.
        Each criterion's rate is over the items the judge scored, with a Wilson interval over them; the
        unscored are counted in `details["judge"]`, never a pass or a fail. The judge's cost is there too,
        apart from the lever's."""
        from advisor.judge.grading import Grader, self_judge_warning
        from advisor.stats import metric_interval

        rubric = self.task.rubric
        assert rubric is not None
        found = Grader(rubric, self.judge_model(), self.store).grade(
            [(ex.id, ex.input, p.raw) for ex, p in zip(self.data.eval, predictions)])
        self.store.put_run_grades(run_id, name, [(ex, crit, oh, g) for crit in found.criteria
                                                 for ex, oh, g in zip(found.ids, found.output_hashes,
                                                                      found.grades[crit])])
        if rubric.samples > 1:  # each item's k grades: the verdict's two-level bootstrap reads them
            for crit, drawn in found.samples.items():
                self.judge_samples[(name, crit)] = dict(zip(found.ids, drawn))
        conf = self.task.target.confidence
        for crit, values in found.grades.items():
            scored = [v for v in values if v is not None]
            if scored and rubric.samples > 1:  # judge noise in the interval: items, then one of each item's k grades
                from advisor.judge.decision import two_level_bounds
                from advisor.stats import Interval

                low, high = two_level_bounds(found.samples[crit], (1 + conf) / 2, seed=self.task.seed)
                metrics[crit] = Interval(sum(scored) / len(scored), low, high, conf)
                scores.aggregate[crit] = sum(scored) / len(scored)
            elif scored:
                metrics[crit] = metric_interval(scored, conf)
                scores.aggregate[crit] = sum(scored) / len(scored)
        if rubric.in_pass_all and "pass_all" in scores.per_item:
            # pass_all: every check and every criterion passed; an unscored criterion leaves the item unscored.
            combined = [None if any(found.grades[c][i] is None for c in found.criteria)
                        else float(checks == 1.0 and all(found.grades[c][i] == 1.0 for c in found.criteria))
                        for i, checks in enumerate(scores.per_item["pass_all"])]
            self.judge_pass_all[name] = dict(zip(found.ids, combined))
            kept = [v for v in combined if v is not None]
            if kept:
                metrics["pass_all"] = metric_interval(kept, conf)
                scores.aggregate["pass_all"] = sum(kept) / len(kept)
            else:
                metrics.pop("pass_all", None)
        warning = self_judge_warning(rubric, row.model.spec if row is not None else self.task.model)
        scores.details["judge"] = {"criteria": found.summary(), "cost": found.cost(),
                                   "warnings": [warning] if warning else []}

    def score_artifact(self, lever: Lever, artifact: Artifact, row_name: str | None = None) -> float:
        """The target metric of an artifact on the eval set (answers cached like any others, stored
        under `row_name`, the scorecard row, else the lever's name)."""
        predictions, _, _ = self.predict(lever, artifact, row_name=row_name)
        scores = score(self.task, [ex.output for ex in self.data.eval], [p.output for p in predictions],
                       [p.raw for p in predictions])
        return scores.aggregate[self.task.target.metric]

    def learning_curves(self, row_names: list[str], fractions: tuple[float, ...]) -> dict[str, Any]:
        """Metric against train size and a fit (advisor.curves) for each named row whose lever trains
        on subsets, keyed by row name. `row_names`: `lever`, or `lever@alias` with several models,
        each measured on its own row's model."""
        from advisor.curves import has_curve, measure_curve
        from advisor.plan import plan_rows

        wanted = list(dict.fromkeys(n.split("@")[0] for n in row_names))
        levers = {lv.name: lv for lv in load_levers(wanted) if has_curve(lv)}
        out: dict[str, Any] = {}
        for row in plan_rows(self.task, [n for n in row_names if n.split("@")[0] in levers], levers):
            lever = levers[row.lever]
            curve = measure_curve(lever, self.context(lever, row), self.lever_options(lever), fractions,
                                  score=lambda art, lever=lever, row=row: self.score_artifact(lever, art, row.name))
            out[row.name] = curve.as_dict()
        return out

    def run(self, lever_names: list[str] | None = None, task_file: Path | None = None,
            on_lever: Callable[[LeverResult], None] | None = None,
            curve_fractions: tuple[float, ...] | None = None) -> RunResult:
        """Run the levers cheapest first; with `curve_fractions`, also the fine-tuning levers'
        learning curves, which the verdict reads before it advises what to try next.

        The run is a row of the store's `runs` (status running, then done, failed or interrupted), and
        its record carries that row's id (`RunRecord.run_id`). Raises InputError for bad input found
        before any model loads, DiskFullError when the disk fills (every answer stored before it is
        kept; `disk_full` says how much more the run needs), and what a backend or lever raises."""
        from advisor.plan import plan_rows

        names = lever_names or self.task.levers
        levers = load_levers([n.split("@")[0] for n in names])
        for lever in levers:  # options are checked before any model loads
            self.lever_options(lever)
        rank = {lv.name: i for i, lv in enumerate(levers)}  # rung order, then the task's model order
        rows = sorted(plan_rows(self.task, names, {lv.name: lv for lv in levers}), key=lambda r: rank[r.lever])
        self.preflight(rows)
        results: list[LeverResult] = []
        run_id: int | None = None
        try:
            run_id = self.store.start_run(self.task.name)
            by_name = {lv.name: lv for lv in levers}
            for row in rows:
                result = self.run_lever(by_name[row.lever], run_id, row)
                results.append(result)
                if on_lever:
                    on_lever(result)
            curves = (self.learning_curves([r.name for r in results], curve_fractions) if curve_fractions
                      else {})
            result = self.judge(results, curves, task_file, run_id)
            if self.task.rubric is not None:
                from advisor.judge.labels import LABELS_FILE, judge_section, load_labels

                labels = load_labels(self.task.base_dir / LABELS_FILE)
                result.record.judge = judge_section(self.store, run_id, [r.name for r in results],
                                                    self.task.rubric.names, labels, self.task.target.confidence,
                                                    self.task.rubric.min_kappa)
                result.record.judge_bias = self.length_probes(run_id, results)
                probe = result.record.judge_bias.get(self.task.target.metric)
                if isinstance(probe, dict):  # a target criterion the judge may grade by length: a note
                    result.record.verdict.notes += [str(f) for f in probe.get("flags") or []]
            self.store.finish_run(run_id, "done", result.to_json())
        except KeyboardInterrupt:
            self._finish(run_id, "interrupted")
            raise
        except Exception as e:
            self._finish(run_id, "failed")
            if is_disk_full(e):
                raise self.disk_full(e, [r.name for r in rows[len(results):]]) from None
            raise
        return result

    def _finish(self, run_id: int | None, status: str) -> None:
        """Record how a run ended; on a full disk even that may fail: the run then stays `running`
        until the next run into the folder marks it abandoned."""
        if run_id is None:
            return
        try:
            self.store.finish_run(run_id, status)
        except sqlite3.Error:
            pass

    def disk_full(self, e: BaseException, rows_left: list[str]) -> DiskFullError:
        """The one-line error for a disk that filled during the run: what could not be written, that
        every answer so far is saved, and, where it can be estimated, how much more the run's answers
        need: (eval answers still missing for `rows_left`, the rows not finished) × (the store's
        bytes per stored answer so far)."""
        what = getattr(e, "filename", None) or self.store.path
        parts = [f"the disk is full: {what} could not be written ({getattr(e, 'strerror', None) or e})"]
        try:
            stored = self.store.count_predictions()
            ids = [ex.id for ex in self.data.eval]
            left = sum(max(0, len(ids) - self.store.count_answered(name, ids)) for name in rows_left)
            per, log = self.store.bytes_per_answer(), self.store.log_headroom()
        except sqlite3.Error:  # the store cannot even be read: say nothing we cannot back
            stored, left, per, log = 0, 0, None, 0
        parts.append(f"the {stored} answers stored so far are saved in {self.store.path} and a rerun reuses "
                     "them" if stored else f"everything stored so far is kept in {self.store.path}")
        if left and per:
            parts.append(f"the {left} eval answers still to compute need about {size_text(left * per + log)} more "
                         f"({left} × {size_text(per)}, the store's size per answer so far"
                         + (f", plus up to {size_text(log)} for SQLite's write-ahead log)" if log else ")"))
        try:
            parts.append(f"{size_text(shutil.disk_usage(self.workdir).free)} free there now")
        except OSError:
            pass
        return DiskFullError("; ".join(parts) + "; free some space and run again")

    def length_probes(self, run_id: int, results: list[LeverResult]) -> dict[str, Any]:
        """criterion -> the judge's pass rate against output length per row (advisor.judge.bias)."""
        from advisor.judge.bias import length_probe, words

        assert self.task.rubric is not None
        out: dict[str, Any] = {}
        graded = {r.name: self.store.run_grades(run_id, r.name) for r in results}
        for crit in self.task.rubric.names:
            rows = {}
            for r in results:
                per = graded[r.name].get(crit, {})
                ids = [ex.id for ex in self.data.eval]
                rows[r.name] = ([words(p.raw) for p in r.predictions], [per.get(i, ("", None))[1] for i in ids])
            out[crit] = plain_json(length_probe(rows, crit))
        return out

    def criterion_evidence(self, run_id: int, ev: Any) -> Any:
        """`ev` (advisor.verdict.LeverEvidence) with its target criterion's grades and the human grades of
        the same outputs (labels.jsonl, by output hash) attached (advisor.judge.decision). No trivial
        baseline is graded: the judge is not asked about an empty answer."""
        from dataclasses import replace

        from advisor.judge.decision import criterion_evidence
        from advisor.judge.labels import LABELS_FILE, load_labels

        t = self.task
        assert t.rubric is not None
        crit = t.target.metric
        labels = load_labels(t.base_dir / LABELS_FILE)
        if crit == "pass_all":  # rubric.in_pass_all: checks and criteria; people's pass_all where they graded all
            graded = self.store.run_grades(run_id, ev.name)
            combined = self.judge_pass_all.get(ev.name, {})
            order = [ex.id for ex in self.data.eval if ex.id in combined]
            checks = dict(zip([ex.id for ex in self.data.eval], ev.per_item.get("pass_all", [])))
            human = {}
            for ex in order:
                got = [labels.get((ex, graded[c][ex][0], c)) for c in t.rubric.names if ex in graded.get(c, {})]
                if len(got) == len(t.rubric.names) and None not in got:
                    human[ex] = float(checks.get(ex) == 1.0 and all(g == 1.0 for g in got))
            found = criterion_evidence("pass_all", {ex: combined[ex] for ex in order}, human,
                                       confidence=t.target.confidence, min_kappa=t.rubric.min_kappa, seed=t.seed)
            parts = {}
            for c in t.rubric.names:
                per = graded.get(c, {})
                own = {ex: labels[(ex, oh, c)] for ex, (oh, _) in per.items() if (ex, oh, c) in labels}
                part = criterion_evidence(c, {ex: g for ex, (_, g) in per.items()}, own,
                                          confidence=t.target.confidence, min_kappa=t.rubric.min_kappa, seed=t.seed)
                if part.agreement is not None:
                    parts[c] = part.agreement
            return replace(ev, criterion=replace(found, parts=parts))
        per = self.store.run_grades(run_id, ev.name).get(crit, {})
        order = [ex.id for ex in self.data.eval if ex.id in per]
        human = {ex: labels[(ex, per[ex][0], crit)] for ex in order if (ex, per[ex][0], crit) in labels}
        samples = self.judge_samples.get((ev.name, crit))  # rubric.samples > 1: each item's k grades
        found = criterion_evidence(crit, {ex: per[ex][1] for ex in order}, human, confidence=t.target.confidence,
                                   min_kappa=t.rubric.min_kappa, samples=samples or None, seed=t.seed)
        return replace(ev, criterion=found)

    def judge(self, results: list[LeverResult], curves: dict[str, Any], task_file: Path | None,
              run_id: int | None = None) -> RunResult:
        """The verdict over the measured rows (advisor.verdict.decide, computed once) and the run record;
        `run_id`: the store's id of this run (advisor.store.RunStore.start_run), recorded in it."""
        t = self.task
        target = TargetRecord(metric=t.target.metric, threshold=t.target.threshold, confidence=t.target.confidence,
                              rule=t.target.rule, margin=t.target.margin, need=t.target.need)
        groups = eval_groups(self.data)
        baseline = trivial_baseline(t, self.data, groups)
        curve_records = {k: CurveRecord.model_validate(plain_json(v)) for k, v in curves.items()}
        evidence = [r.evidence() for r in results]
        if (t.target_is_criterion or (t.target.metric == "pass_all" and t.pass_all_uses_judge)) and run_id is not None:
            evidence = [self.criterion_evidence(run_id, e) for e in evidence]
        verdict = decide(target, evidence, None if t.target_is_criterion else baseline,
                         golds=[ex.output for ex in self.data.eval], labels=t.labels,
                         has_knowledge=t.data.knowledge is not None, curves=curve_records, groups=groups, seed=t.seed)
        scoring = None
        if t.kind == "classification":
            counts = self._backend.option_token_counts if self._backend else None
            scoring = ScoringRecord.model_validate(plain_json(ranking_sensitivity(self.task, self.data, results, verdict,
                                                                             counts)))
        elif wording := wording_warnings(t, results):
            scoring = ScoringRecord(warnings=wording)
        record = RunRecord(
            run_id=run_id, task=t.name, kind=t.kind, labels=t.labels, target=target, costs=t.costs, eval_limit=self.limit,
            levers=[r.record(verdict.levers[r.name], t.model) for r in results], baseline=baseline.record(),
            verdict=verdict.record, scoring=scoring, learning_curves=curve_records, checks=check_records(t),
            audit=AuditRecord.model_validate(plain_json(self.audit.as_dict())),
            provenance=provenance(t, self.data, task_file), compute=self.compute_info())
        return RunResult(t, self.workdir, results, verdict, record, self.data, self.limit)


def run_task(task: Task, workdir: Path, **kwargs: Any) -> RunResult:
    """Run every lever the task names and return the scored, priced, recommended result."""
    runner = Runner(task, workdir, **kwargs)
    try:
        return runner.run()
    finally:
        runner.close()
