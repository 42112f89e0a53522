"""Asking the models: the run's backends, made once each, and the cached prediction path.

    backends = Backends(task, cache_dir, progress)        # backends.getter(row)() loads a row's model
    predictor = Predictor(task, data, store, run_params(task), progress)
    predictions, keys, computed = predictor.predict(lever, artifact, row_name="prompt")
    latencies_ms = predictor.latencies(lever, artifact, keys, row_name="prompt")

Every answer is stored in the run store (advisor/store.py) under a key of backend, lever,
artifact, request and generation parameters, so asking again costs nothing. A lever that
scores candidates during `prepare` is handed the same `Predictor` in its context
(`LeverContext.predictor`); nothing here calls back into the runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from advisor.events import NoProgress, ProgressFactory, status
from advisor.ranking import AUTO, natural_method
from advisor.scoring import parse_output
from advisor.store import RunStore, prediction_key
from advisor.types import (
    Artifact,
    Backend,
    Example,
    Generation,
    GenerationParams,
    Lever,
    OnBatch,
    Prediction,
    Request,
    RowAnswers,
)


def latency_key(key: str) -> str:
    """The store key of the serving latency measured on the answer stored under `key`."""
    return key + ":latency"


def run_params(task: Any, params: GenerationParams | None = None) -> GenerationParams:
    """The generation parameters of a run: `params` (default: the task's answer budget) with, for a
    classification task, the task's option ranking riding in them (and so in every answer's key)
    and `rank_all` set: every answer records what each ranking method picks, so a row's method is
    chosen or checked afterwards without model time. Other tasks rank no options."""
    params = params or GenerationParams(max_new_tokens=task.prompt.max_new_tokens)
    classify = task.kind == "classification"
    return replace(params, option_ranking=task.scoring.option_ranking if classify else None, rank_all=classify)


class Backends:
    """The run's backends, each made once on first use: the task's `model` (`base_backend`) and,
    with `models:`, one per model (`backend_for`), every API model sharing one RunBudget."""

    def __init__(self, task: Any, cache_dir: Path, progress: ProgressFactory | None = None) -> None:
        self.task = task
        self.cache_dir = cache_dir
        self.progress: ProgressFactory = progress or NoProgress()
        self.base: Backend | None = None  # the task's model once loaded (a test may set its own)
        self._by_model: dict[Any, Backend] = {}  # by advisor.modelspec.ModelChoice
        self._budget: Any = None  # one RunBudget for every API model of the run

    def base_backend(self) -> Backend:
        if self.base is None:
            from advisor.backends import make_backend

            # The first run on a machine also converts the embedded model (about 20 s): say so.
            with status(self.progress, f"loading {self.task.model}"):
                self.base = make_backend(self.task, self.cache_dir,
                                         on_status=lambda text: status(self.progress, text))
        return self.base

    def provide(self, choice: Any, backend: Backend) -> None:
        """Use `backend`, already made (say, a model loaded once under two identities), for `choice`."""
        self._by_model[choice] = backend

    def backend_for(self, choice: Any) -> Backend:
        """The backend of one of the task's models (advisor.modelspec.ModelChoice), made once."""
        if choice not in self._by_model:
            from advisor.backends import make_backend_for
            from advisor.backends.openai import RunBudget

            if self._budget is None:
                self._budget = RunBudget(self.task.budget.max_requests, self.task.budget.max_usd)
            advance = self.progress(f"loading {choice.spec}", 1)
            self._by_model[choice] = make_backend_for(self.task, choice, self.cache_dir, self._budget,
                                                      on_status=lambda text: status(self.progress, text))
            advance(1, 1)
        return self._by_model[choice]

    def getter(self, row: Any = None) -> Callable[[], Backend]:
        """How a row (advisor.plan.Row; None: the task's model) gets its backend, lazily."""
        if row is None or row.model.alias is None:
            return self.base_backend
        return lambda: self.backend_for(row.model)

    def getters(self, rows: list[Any] | None) -> list[Callable[[], Backend]]:
        """One getter per distinct model the rows use (the task's model when there are none)."""
        found: dict[Any, Callable[[], Backend]] = {}
        for row in rows or [None]:
            key = None if row is None or row.model.alias is None else row.model
            found.setdefault(key, self.getter(row))
        return list(found.values())


class Predictor:
    """The cached prediction path: requests built and checked against the model's context, answers
    from the store or the backend (stored as they come), and the serving-latency probe.

    `params`: the run's generation parameters (`run_params`); `latency_probe`: how many eval
    requests are timed one at a time.
    """

    def __init__(self, task: Any, data: Any, store: RunStore, params: GenerationParams,
                 progress: ProgressFactory | None = None, latency_probe: int = 12) -> None:
        self.task = task
        self.data = data
        self.store = store
        self.params = params
        self.progress: ProgressFactory = progress or NoProgress()
        self.latency_probe = latency_probe
        self.probe_requests: dict[str, int] = {}  # by row: requests an API model's latency probe still sent
        # By row: the classification path chosen for an API model (advisor.measure.choose_path).
        self.paths: dict[str, str] = {}

    def row_params(self, lever: Lever, backend: Backend | None = None, row: str | None = None,
                   path: str | None = None) -> GenerationParams:
        """The generation parameters of one lever's answers. Classification: ranked by the lever's
        natural method (advisor.ranking.natural_method) with every method's pick recorded
        (rank_all), whatever `scoring.option_ranking` says: the row's method, chosen (auto) or
        forced, is applied afterwards from the same answers (`Runner.rank_row`), so changing it
        recomputes nothing. On a `backend` that asks an API for labels, the classification path
        too: `path`, else the one chosen for `row`, else the backend's default; there every request
        costs money, so a forced method is sent as is and no other method's inputs are bought (the
        content-free reference only when the method needs it)."""
        params = self.params
        if params.option_ranking:
            params = replace(params, option_ranking=natural_method(lever))
            paths = backend.classification_paths(list(self.task.labels or [])) if backend is not None else ()
            if paths:
                params = replace(params, classification_path=path or self.paths.get(row or lever.name) or paths[0])
                forced = self.task.scoring.option_ranking
                if forced != AUTO:  # an API model: a forced method buys no reference it does not need
                    params = replace(params, option_ranking=forced, rank_all=False)
        return params

    def predict(self, lever: Lever, artifact: Artifact, examples: list[Example] | None = None,
                what: str = "predicting", row_name: str | None = None,
                build: Callable[[list[Example]], list[Request]] | None = None,
                path: str | None = None) -> RowAnswers:
        """Predictions for every eval item (cached ones from the store), their keys, and how many were new.

        `examples`: other items instead (a lever scoring candidates on its dev split), cached alike.
        `row_name`: the scorecard row (`lever@model`) the answers are stored under; the lever's name by default.
        `build(examples) -> requests`: ask them otherwise than `lever.requests` (advisor.types.HeldOut).
        `path`: an API model's classification path for these answers (default: the row's, `row_params`).
        """
        row = row_name or lever.name
        examples = self.data.eval if examples is None else examples
        params = self.row_params(lever, artifact.backend, row, path)
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
        if backend.answers is not None:  # an API model: each answer is stored the moment it arrives
            done = len(examples) - len(todo)
            for j, g in backend.answers([requests[i] for i in todo], params):
                i = todo[j]
                found[keys[i]] = self._prediction(requests[i], g)
                # Its latency too (the serving-latency probe reads it: nothing is sent twice).
                latency = ([(latency_key(keys[i]), self._latency_ms(requests[i], g))] if g.latency_s is not None
                           else None)
                self.store.put_predictions(row, backend.identity, [(keys[i], found[keys[i]])], latency)
                done += 1
                advance(done, len(examples))
            todo_local: list[int] = []
        else:
            todo_local = todo
        chunk = max(self.params.batch_size * 4, 1)  # commit often enough that a kill loses little
        for start in range(0, len(todo_local), chunk):
            idx = todo[start : start + chunk]
            batch = [requests[i] for i in idx]
            # The bar moves per batch the backend finishes (on_batch); the store commits per chunk, and
            # the bar reaches the chunk's end only once it is stored: "done" never shows answers that a
            # Ctrl-C or a kill at that moment would lose.
            base, moved = len(examples) - len(todo) + start, [0]

            def on_done(n: int, base: int = base, moved: list[int] = moved, cap: int = len(idx) - 1) -> None:
                moved[0] = min(moved[0] + n, cap)
                advance(base + moved[0], len(examples))

            made = self._call(backend, batch, params, on_done)
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
        return RowAnswers(out, keys, len(todo))

    def requests(self, lever: Lever, artifact: Artifact, examples: list[Any],
                 build: Callable[[list[Example]], list[Request]] | None = None) -> list[Request]:
        """The lever's requests (or `build`'s), each checked against the model's context before any
        is sent (too long: an error naming the item, or cut to fit under `prompt.on_overflow: truncate`)."""
        from advisor.overflow import fit_requests

        make = build or (lambda exs: lever.requests(artifact, exs))
        return fit_requests(artifact.backend, examples, make(examples), lambda ex: make([ex])[0],
                            on_overflow=self.task.prompt.on_overflow, lever=lever.name)

    def latencies(self, lever: Lever, artifact: Artifact, keys: list[str], row_name: str | None = None,
                  method: str | None = None) -> list[float]:
        """Serving latency in ms of N eval items (N = `latency_probe`; none when 0).

        A local model: the first N eval requests sent one at a time, as a single user would send
        them, ranked by the row's label-ranking `method` alone (as it would be served), timed from
        building the request (retrieval counts) to the answer.

        An API model (`backend.answers`): the latencies the run measured on its own requests, at the
        run's concurrency (each answer's answered try, plus building its request), stored with each
        answer; the first N eval items that have one. Nothing is sent for them. Only answers stored
        by an older version carry none: then as many of the first items as are short are sent one at
        a time, as for a local model, and the run says so in one line and how many it sends
        (`probe_requests` counts them)."""
        row = row_name or lever.name
        params = self.row_params(lever, artifact.backend, row)
        if params.option_ranking:
            params = replace(params, option_ranking=method or params.option_ranking, rank_all=False)
        n = min(self.latency_probe, len(keys))
        if n == 0:
            return []
        remote = artifact.backend.answers is not None
        # An API model: any N items' own latencies serve (at most one probe key per distinct item).
        pool = list(dict.fromkeys(latency_key(k) for k in keys)) if remote else [latency_key(k) for k in keys[:n]]
        found = self.store.get_latencies(pool)
        chosen = [k for k in pool if k in found][:n]
        short = n - len(chosen)
        missing: list[int] = []  # eval items to time now, in order
        for i, key in enumerate(latency_key(k) for k in keys):
            if len(missing) >= short:
                break
            if key not in found and not (remote and any(latency_key(keys[j]) == key for j in missing)):
                missing.append(i)
        if missing:
            what = f"{row}: latency probe"
            if remote:
                what += (f" sends {len(missing)} request{'s' if len(missing) != 1 else ''} one at a time "
                         "(answers stored by an older version carry no latency)")
                self.probe_requests[row] = self.probe_requests.get(row, 0) + len(missing)
            advance = self.progress(what, len(missing))
            for j, i in enumerate(missing):
                start = time.perf_counter()  # building the request (retrieval) counts as latency too
                self._call(artifact.backend, self.requests(lever, artifact, [self.data.eval[i]]), params)
                ms = (time.perf_counter() - start) * 1000
                self.store.put_latency(latency_key(keys[i]), row, ms)
                found[latency_key(keys[i])] = ms
                chosen.append(latency_key(keys[i]))
                advance(j + 1, len(missing))
        return [found[k] for k in chosen]

    @staticmethod
    def _latency_ms(request: Request, g: Generation) -> float:
        """An API answer's serving latency: its answered try plus building its request (retrieval)."""
        return ((g.latency_s or 0.0) + float(request.context.get("prep_seconds", 0.0))) * 1000

    # -- one call, one answer --------------------------------------------------------------------

    @staticmethod
    def _for_request(p: Prediction, request: Request) -> Prediction:
        """A stored answer for this run's request: this run's example id and what it retrieved and
        scored against the current gold (the answer, its tokens and its compute time stay as stored)."""
        fresh = {k: v for k, v in request.context.items() if k != "prep_seconds"}
        return replace(p, example_id=request.example_id, context={**p.context, **fresh})

    @staticmethod
    def _call(backend: Backend, requests: list[Request], params: GenerationParams,
              on_batch: OnBatch | None = None) -> list[Generation]:
        if all(r.options for r in requests):
            return backend.score_options(requests, params, on_batch=on_batch)
        return backend.generate(requests, params, on_batch=on_batch)

    def _prediction(self, request: Request, g: Generation) -> Prediction:
        context = dict(request.context)
        if g.option_scores is not None:
            context["option_scores"] = g.option_scores
        context.update(g.info)
        # Work the lever did to build the request (retrieval) is part of the query's cost.
        seconds = g.seconds + float(context.get("prep_seconds", 0.0))
        # A backend's "unmappable" is final: the scorer never maps that text onto a label after all.
        output = None if g.info.get("unmappable") else parse_output(self.task, g.text)
        return Prediction(request.example_id, output, g.text, g.tokens_in, g.tokens_out,
                          seconds, context, tokens_in_cached=g.tokens_in_cached)
