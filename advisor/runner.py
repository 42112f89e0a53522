"""Runs the task's levers cheapest first, through one scorer, with every answer cached.

    result = run_task(load_task("sample_tasks/trec/task.yaml"), Path("runs/trec"))
    result.verdict.lever   # e.g. "prompt-few-shot", or None when no lever meets the target
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from advisor.costs import LeverCost, lever_cost, token_price
from advisor.data import Dataset, load_dataset, stable_hash
from advisor.ranking import AUTO, natural_method
from advisor.recommend import Verdict
from advisor.registry import lever_options, load_levers
from advisor.report.progress import on_batch, status
from advisor.scoring import Scores, parse_output, score
from advisor.spec import Task
from advisor.stats import Interval, bootstrap_statistic, metric_interval
from advisor.store import RunStore, prediction_key
from advisor.types import (
    Artifact,
    Backend,
    Example,
    GenerationParams,
    Lever,
    LeverContext,
    Prediction,
    Request,
)
from advisor.verdict_rules import eval_groups, judge_run

ProgressFactory = Callable[[str, int], Callable[[int, int], None]]

PACKAGES = ("advise", "torch", "transformers", "peft", "sentence-transformers", "chromadb", "openai")


def _no_progress(description: str, total: int) -> Callable[[int, int], None]:
    return lambda done, total: None


@dataclass
class LeverResult:
    name: str
    rung: float
    options: dict[str, Any]
    artifact: Artifact
    predictions: list[Prediction]
    scores: Scores
    metrics: dict[str, Interval]
    cost: LeverCost
    meets_target: bool
    computed: int  # predictions made in this run (the rest came from the store)
    verdict_fields: dict[str, Any] = field(default_factory=dict)  # state, bounds, family (verdict_rules)
    extra: dict[str, Any] = field(default_factory=dict)  # lever, model, classification path (advisor.modelspec)

    def as_dict(self, target_confidence: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "rung": self.rung,
            "options": self.options,
            "artifact": {"identity": self.artifact.identity, "model": self.artifact.backend.identity,
                         **self.artifact.info},
            "metrics": {k: iv.as_dict() for k, iv in self.metrics.items()},
            "confidence": target_confidence,
            "n_eval": len(self.predictions),
            "cost": self.cost.as_dict(),
            "meets_target": self.meets_target,
            "computed_predictions": self.computed,
            "details": self.scores.details,
            **self.verdict_fields,
            **self.extra,
        }


@dataclass
class RunResult:
    task: Task
    workdir: Path
    levers: list[LeverResult]
    verdict: Verdict
    provenance: dict[str, Any]
    data: Dataset
    limit: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        t = self.task
        return {
            "task": t.name,
            "kind": t.kind,
            "target": {"metric": t.target.metric, "threshold": t.target.threshold,
                       "confidence": t.target.confidence, "need": t.target.need},
            "levers": [lv.as_dict(t.target.confidence) for lv in self.levers],
            "recommendation": self.verdict.as_dict(),
            "eval_limit": self.limit,
            "queries_per_month": t.costs.queries_per_month,
            "costs": t.costs.model_dump(),  # the stated assumptions every dollar figure rests on
            "provenance": self.provenance,
            **self.extras,
        }

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False))
        tmp.replace(path)  # a reader never sees half a file
        return path


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def provenance(task: Task, data: Dataset, task_file: Path | None) -> dict[str, Any]:
    return {
        "model": task.model,
        "task_file": str(task_file) if task_file else None,
        "task_sha256": stable_hash(task.model_dump(mode="json"))[:16],
        "prompt_sha256": stable_hash(task.prompt.model_dump())[:16],
        "data": {**data.hashes(), "n_train": len(data.train), "n_eval": len(data.eval),
                 "leakage_removed": data.leakage_removed,
                 "near_leakage_removed": data.near_leakage_removed},
        "versions": _versions(),
        "git": _git_state(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


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
    """One task, one run folder. Levers run in rung order; answers come from the store when cached."""

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
    ) -> None:
        from advisor.backends.hf import default_cache_dir
        from advisor.prompting import with_limited_dev

        task = with_limited_dev(task, limit)  # `--limit` is a quick look: the dev split shrinks with it
        self.task = task
        self.workdir = workdir
        self.cache_dir = cache_dir or default_cache_dir()
        self.limit = limit
        self.progress = progress or _no_progress
        self.latency_probe = latency_probe
        self.params = params or GenerationParams(max_new_tokens=task.prompt.max_new_tokens)
        # The task's option ranking rides in the params (and so in every classification answer's key);
        # under `auto` each lever row ranks by its natural method (`row_params`). Every answer records
        # what each method picks (rank_all), so the row's method is chosen or checked without model time.
        classify = task.kind == "classification"
        self.params = replace(self.params, option_ranking=task.scoring.option_ranking if classify else None,
                              rank_all=classify)
        self.console = console
        self._backend: Backend | None = None
        self._backends: dict[Any, Backend] = {}  # by model (advisor.modelspec.ModelChoice)
        self._budget: Any = None  # one RunBudget for every API model of the run
        self.data = load_dataset(task, limit=limit)
        from advisor.audit import apply_near_duplicate_policy, audit_task

        # The data audit runs before any model time is spent; its near-duplicate policy may shrink train.
        self.audit = audit_task(task)
        self.data = apply_near_duplicate_policy(self.data, self.audit, task.audit.near_duplicates)
        # What this runner creates, so that `close` can take it away again when nothing was computed.
        self._made: list[Path] = []
        self._make_dirs(workdir)
        self._new_store = not (workdir / "advise.sqlite").exists()
        self.store = RunStore(workdir / "advise.sqlite")

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
        if self._backend is None:
            from advisor.backends import make_backend

            # The first run on a machine also converts the embedded model (about 20 s): say so.
            with status(self.progress, f"loading {self.task.model}"):
                self._backend = make_backend(self.task, self.cache_dir)
        return self._backend

    def backend_for(self, choice: Any) -> Backend:
        """The backend of one of the task's models (advisor.modelspec.ModelChoice), made once."""
        if choice not in self._backends:
            from advisor.backends import make_backend_for
            from advisor.backends.openai import RunBudget

            if self._budget is None:
                self._budget = RunBudget(self.task.budget.max_requests, self.task.budget.max_usd)
            advance = self.progress(f"loading {choice.spec}", 1)
            self._backends[choice] = make_backend_for(self.task, choice, self.cache_dir, self._budget)
            advance(1, 1)
        return self._backends[choice]

    def context(self, lever: Lever, row: Any = None) -> LeverContext:
        workdir = self.workdir / "levers" / (row.name if row else lever.name)
        self._make_dirs(workdir)
        base = self.base_backend if row is None or row.model.alias is None else (lambda: self.backend_for(row.model))
        return LeverContext(task=self.task, data=self.data, workdir=workdir, cache_dir=self.cache_dir,
                            base_backend=base, console=self.console, progress=self.progress,
                            predict=self.predict)

    def lever_options(self, lever: Lever) -> Any:
        return lever_options(lever, self.task.lever_options.get(lever.name, {}))

    # -- predictions -----------------------------------------------------------------------------

    def row_params(self, lever: Lever) -> GenerationParams:
        """The generation parameters of one lever's answers. Classification: ranked by the lever's
        natural method (advisor.ranking.natural_method) with every method's pick recorded
        (rank_all), whatever `scoring.option_ranking` says: the row's method, chosen (auto) or
        forced, is applied afterwards from the same answers (`rank_row`), so changing it
        recomputes nothing."""
        if self.params.option_ranking:
            return replace(self.params, option_ranking=natural_method(lever))
        return self.params

    def predict(self, lever: Lever, artifact: Artifact, examples: list[Example] | None = None,
                what: str = "predicting", row: str | None = None,
                build: Callable[[list[Example]], list[Request]] | None = None,
                ) -> tuple[list[Prediction], list[str], int]:
        """Predictions for every eval item (cached ones from the store), their keys, and how many were new.

        `examples`: other items instead (a lever scoring candidates on its dev split), cached alike.
        `row`: the scorecard row (`lever@model`) the answers are stored under; the lever's name by default.
        `build(examples) -> requests`: ask them otherwise than `lever.requests` (advisor.types.HeldOut).
        """
        row = row or lever.name
        examples = self.data.eval if examples is None else examples
        params = self.row_params(lever)
        with status(self.progress, f"{row}: building {len(examples)} requests"):
            requests = self.requests(lever, artifact, examples, build)
        backend = artifact.backend
        keys = [
            prediction_key(backend=backend.identity, lever=lever.name, artifact=artifact.identity, request=r,
                           params=params)
            for r in requests
        ]
        found = self.store.get_predictions(keys)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}  # a question asked twice is answered once
        todo = [i for i, k in enumerate(keys) if k not in found and first[k] == i]
        advance = self.progress(f"{row}: {what}", len(examples))
        advance(len(examples) - len(todo), len(examples))
        answers = getattr(backend, "answers", None)
        if answers is not None:  # an API model: each answer is stored the moment it arrives
            done = len(examples) - len(todo)
            for j, g in answers([requests[i] for i in todo], params):
                i = todo[j]
                found[keys[i]] = self._prediction(requests[i], g)
                self.store.put_predictions(row, backend.identity, [(keys[i], found[keys[i]])])
                done += 1
                advance(done, len(examples))
            todo_local: list[int] = []
        else:
            todo_local = todo
        chunk = max(self.params.batch_size * 4, 1)  # commit often enough that a kill loses little
        for start in range(0, len(todo_local), chunk):
            idx = todo[start : start + chunk]
            batch = [requests[i] for i in idx]
            # The bar moves per batch the backend finishes (batch_done); the store commits per chunk.
            base, moved = len(examples) - len(todo) + start, [0]

            def on_done(n: int, base: int = base, moved: list[int] = moved, cap: int = len(idx)) -> None:
                moved[0] = min(moved[0] + n, cap)
                advance(base + moved[0], len(examples))

            with on_batch(on_done):
                made = self._call(backend, batch, params)
            items = [(keys[i], self._prediction(requests[i], g)) for i, g in zip(idx, made)]
            self.store.put_predictions(row, backend.identity, items)
            found.update(dict(items))
            advance(len(examples) - len(todo) + start + len(idx), len(examples))
        out = [self._for_request(found[k], r) for k, r in zip(keys, requests)]
        forced = self.task.scoring.option_ranking if self.params.option_ranking else None
        if forced and forced != AUTO:  # a forced method holds for every answer, dev ones included
            from advisor.ranking import answers_by_method, with_method

            out = [with_method(p, forced, lambda raw: parse_output(self.task, raw))
                   if answers_by_method(p) is not None else p for p in out]
        return out, keys, len(todo)

    def requests(self, lever: Lever, artifact: Artifact, examples: list[Any],
                 build: Callable[[list[Example]], list[Request]] | None = None) -> list[Request]:
        """The lever's requests (or `build`'s), each checked against the model's context before any
        is sent (too long: an error naming the item, or cut to fit under `prompt.on_overflow: truncate`)."""
        from advisor.overflow import fit_requests

        make = build or (lambda exs: lever.requests(artifact, exs))
        return fit_requests(artifact.backend, examples, make(examples), lambda ex: make([ex])[0],
                            on_overflow=self.task.prompt.on_overflow, lever=lever.name)

    def preflight(self, rows: list[Any] | None = None) -> None:
        """Before any lever runs: every template renders (a null or missing field is named) and,
        unless the task truncates, every eval item's plain prompt fits the context of every model
        the run's rows (advisor.modelspec.Row) use."""
        from advisor.overflow import fit_requests
        from advisor.prompting import check_templates, make_request, render_messages

        check_templates(self.task, self.data.train + self.data.eval)
        if self.task.prompt.on_overflow != "error":
            return
        getters: dict[Any, Callable[[], Backend]] = {}
        for row in rows or [None]:
            if row is None or row.model.alias is None:
                getters.setdefault(None, self.base_backend)
            else:
                getters.setdefault(row.model, lambda m=row.model: self.backend_for(m))
        reqs = [make_request(self.task, ex, render_messages(self.task, ex)) for ex in self.data.eval]
        for get in getters.values():
            fit_requests(get(), self.data.eval, reqs, lambda ex: make_request(self.task, ex, render_messages(
                self.task, ex)), on_overflow="error", lever="prompt")

    def scoring_info(self, results: list[LeverResult]) -> dict[str, Any]:
        """How classification options were ranked, and how much the verdict rests on that.

        `option_ranking`: the task's setting (`auto`, or the method it forces; each row's own method
        and why are in its `option_ranking`); `option_tokens`: label -> tokens; `sensitivity`: a
        check, never a choice: per lever row, per other method (advisor/ranking.py ranks the same
        log-likelihoods every way, so this costs no model time), the eval predictions it would
        change (`changed` of `n_eval`), the target metric under it, the row's `state` under the
        task's rule and its `place` among the rows (1 = highest target metric). `warnings`: labels
        that differ a lot in length; every row whose state or place would change under another
        method (the verdict rests on the method); rows where most predictions move under
        `calibrated_prefix` (they rest on the labels' spelling).
        """
        from advisor.ranking import answers_by_method
        from advisor.scoring import label_length_warning
        from advisor.verdict_rules import assess

        setting = self.task.scoring.option_ranking
        info: dict[str, Any] = {"option_ranking": setting}
        warnings: list[str] = []
        counts = getattr(self._backend, "option_token_counts", None) if self._backend else None
        if counts is not None:
            info["option_tokens"] = counts(list(self.task.labels or []))
            warning = label_length_warning(info["option_tokens"], setting)
            if warning:
                warnings.append(warning)
        t = self.task.target
        metric, threshold = t.metric, t.threshold
        golds = [ex.output for ex in self.data.eval]
        groups = eval_groups(self.data)

        def judged(preds: list[Any]) -> tuple[float, str]:
            sc = score(self.task, golds, preds)
            if metric in sc.per_item:
                found = assess(sc.per_item[metric], threshold, t.confidence, t.rule, groups=groups, seed=self.task.seed)
            else:
                from advisor.scoring import macro_f1

                labels = self.task.labels or []
                found = assess(None, threshold, t.confidence, t.rule, n=len(golds), seed=self.task.seed,
                               set_statistic=lambda idx: macro_f1([golds[i] for i in idx], [preds[i] for i in idx],
                                                                  labels))
            return float(sc.aggregate[metric]), found["state"]

        values = {r.name: float(r.scores.aggregate.get(metric, 0.0)) for r in results}

        def place(name: str, value: float) -> int:
            return 1 + sum(1 for other, v in values.items() if other != name and v > value)

        sensitivity: dict[str, Any] = {}
        for r in results:
            answers = [answers_by_method(p) for p in r.predictions]
            if not answers or any(a is None for a in answers):
                continue  # an API row (no log-likelihoods of every option) or answers stored before
            used = (r.extra.get("option_ranking") or {}).get("method")
            own_value, own_state = judged([p.output for p in r.predictions])
            own_place = place(r.name, own_value)
            row: dict[str, Any] = {}
            moves: list[str] = []
            for method in sorted(set.intersection(*(set(a) for a in answers if a)) - {used}):
                texts = [a[method] for a in answers if a]
                preds = [parse_output(self.task, x) for x in texts]
                value, state = judged(preds)
                changed = sum(x != p.raw for x, p in zip(texts, r.predictions))
                row[method] = {"changed": changed, "n_eval": len(preds), metric: value, "state": state,
                               "place": place(r.name, value)}
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

    @staticmethod
    def _for_request(p: Prediction, request: Request) -> Prediction:
        """A stored answer for this run's request: this run's example id and what it retrieved and
        scored against the current gold (the answer, its tokens and its compute time stay as stored)."""
        fresh = {k: v for k, v in request.context.items() if k != "prep_seconds"}
        return replace(p, example_id=request.example_id, context={**p.context, **fresh})

    def _call(self, backend: Backend, requests: list[Request], params: GenerationParams) -> list[Any]:
        if all(r.options for r in requests):
            return backend.score_options(requests, params)
        return backend.generate(requests, params)

    def _prediction(self, request: Request, g: Any) -> Prediction:
        context = dict(request.context)
        if g.option_scores is not None:
            context["option_scores"] = g.option_scores
        context.update(g.info)
        # Work the lever did to build the request (retrieval) is part of the query's cost.
        seconds = g.seconds + float(context.get("prep_seconds", 0.0))
        return Prediction(request.example_id, parse_output(self.task, g.text), g.text, g.tokens_in, g.tokens_out,
                          seconds, context, tokens_in_cached=g.tokens_in_cached)

    def latencies(self, lever: Lever, artifact: Artifact, keys: list[str], row: str | None = None,
                  method: str | None = None) -> list[float]:
        """Serving latency: the first N eval requests one at a time, as a single user would send them,
        ranked by the row's label-ranking `method` alone (as it would be served)."""
        params = self.row_params(lever)
        if params.option_ranking:
            params = replace(params, option_ranking=method or params.option_ranking, rank_all=False)
        n = min(self.latency_probe, len(keys))
        probe_keys = [k + ":latency" for k in keys[:n]]
        found = self.store.get_latencies(probe_keys) if probe_keys else {}
        missing = [i for i, k in enumerate(probe_keys) if k not in found]
        if missing:
            advance = self.progress(f"{row or lever.name}: latency probe", len(missing))
            for j, i in enumerate(missing):
                start = time.perf_counter()  # building the request (retrieval) counts as latency too
                self._call(artifact.backend, self.requests(lever, artifact, [self.data.eval[i]]), params)
                ms = (time.perf_counter() - start) * 1000
                self.store.put_latency(probe_keys[i], row or lever.name, ms)
                found[probe_keys[i]] = ms
                advance(j + 1, len(missing))
        return [found[k] for k in probe_keys]

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
        meets = metrics[self.task.target.metric].value >= self.task.target.threshold
        record = getattr(lever, "record_metrics", None)  # e.g. an adapter store keeps its scores
        if record:
            record(self.context(lever, row), artifact, {k: iv.value for k, iv in metrics.items()})
        choice = getattr(lever, "report_details", None)  # e.g. prompt variants' dev scores beside eval's
        if choice:
            scores.details.update(choice(artifact, {k: iv.value for k, iv in metrics.items()}))
        extra = row_facts(row, artifact.backend, predictions)
        if ranking is not None:
            extra["option_ranking"] = ranking
        return LeverResult(name, lever.rung, options.model_dump(mode="json"), artifact, predictions, scores,
                           metrics, cost, meets, computed, extra=extra)

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
        found = getattr(lever, "held_out", None)
        held = found(self.context(lever, row), options, artifact) if found else None
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
            from advisor.leverkit.dev_choice import cost_of

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
        from advisor.modelspec import plan_rows

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
            extras: dict[str, Any] = {}
            if self.task.kind == "classification":
                extras["scoring"] = self.scoring_info(results)
            elif wording := wording_warnings(self.task, results):
                extras["scoring"] = {"warnings": wording}
            if curve_fractions:
                extras["learning_curves"] = self.learning_curves([r.name for r in results], curve_fractions)
        except KeyboardInterrupt:
            self.store.finish_run(run_id, "interrupted")
            raise
        except Exception:
            self.store.finish_run(run_id, "failed")
            raise
        extras["audit"] = self.audit.as_dict()
        verdict, extras["baseline"] = judge_run(self.task, self.data, results, extras.get("learning_curves"))
        result = RunResult(self.task, self.workdir, results, verdict, provenance(self.task, self.data, task_file),
                           self.data, self.limit, extras)
        self.store.finish_run(run_id, "done", result.to_json())
        return result


def run_task(task: Task, workdir: Path, **kwargs: Any) -> RunResult:
    """Run every lever the task names and return the scored, priced, recommended result."""
    runner = Runner(task, workdir, **kwargs)
    try:
        return runner.run()
    finally:
        runner.close()
