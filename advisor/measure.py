"""Measuring lever rows: their scores and intervals, each row's label-ranking method, and how much the
verdict rests on choices the run made (ranking sensitivity, wording warnings).

`LeverResult` is one measured row before the verdict (advisor.verdict.decide reads its evidence,
advisor.record.LeverRecord is what results.json keeps of it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.costs import LeverCost
from advisor.data import Dataset
from advisor.execute import Predictor
from advisor.plan import Row
from advisor.ranking import AUTO, natural_method
from advisor.record import ArtifactRecord, CheckRecord, CostRecord, LeverRecord, LeverVerdict, MetricRecord
from advisor.scoring import SET_METRICS, Scores, parse_output, score, set_statistic
from advisor.spec import Task
from advisor.stats import Interval, bootstrap_statistic, metric_interval
from advisor.types import Artifact, Lever, LeverContext, Prediction
from advisor.verdict import Curation, LeverEvidence, Verdict, eval_groups


@dataclass
class LeverResult:
    """One measured row, before the verdict: what the lever declared, its answers, scores and cost."""

    name: str  # the row: `lever` or `lever@alias`
    rung: float
    family: str  # as the lever declares it (`Lever.family`, checked by advisor.registry.load_lever)
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
                             [p.output for p in self.predictions], retrieves="index" in self.artifact.info,
                             curation=self.curation())

    def curation(self) -> Curation | None:
        """For a row trained on cleaned data (its artifact's `curation` record, e.g. lora-curated): the row
        of the same lever on uncleaned data it is paired with (`lever@alias` keeps the alias), and how many
        train items were dropped."""
        found = self.artifact.info.get("curation")
        if not isinstance(found, dict) or not found.get("plain_lever"):
            return None
        _, at, alias = self.name.partition("@")
        return Curation(plain_row=f"{found['plain_lever']}{at}{alias}", dropped=int(found.get("dropped") or 0),
                        reviewed=bool((found.get("review") or {}).get("assumed")))

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
                                    info=plain_json(self.artifact.info)),
            n_eval=len(self.predictions), computed_predictions=self.computed, metrics=self.metric_records(),
            cost=CostRecord(**self.cost.as_dict()), details=plain_json(self.scores.details), verdict=verdict, **extra)


def _items(n: int, split: str) -> str:
    """'1 dev item', '40 dev items'."""
    return f"{n} {split} item{'' if n == 1 else 's'}"


def plain_json(value: Any) -> Any:
    """`value` as plain JSON (tuples to lists, paths to strings), as results.json stores it."""
    return json.loads(json.dumps(value, default=str))


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
        out.append(f"{r.name}: the wording '{chosen}' replaced the task's own on {_items(test['n'], 'dev')} ({metric} "
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


def intervals(task: Task, data: Dataset, scores: Scores, golds: list[Any], preds: list[Any]) -> dict[str, Interval]:
    """Each metric's two-sided interval at the target confidence (advisor.stats): per-item metrics over
    the eval groups, macro-F1 by a (cluster) bootstrap of the set statistic, other set figures bare."""
    conf = task.target.confidence
    seed = task.seed
    groups = eval_groups(data)  # items sharing a passage are resampled together
    out = {m: metric_interval(v, conf, groups=groups, seed=seed) for m, v in scores.per_item.items()}
    for m, value in scores.aggregate.items():
        if m in out:
            continue
        if m in SET_METRICS:
            out[m] = bootstrap_statistic(len(golds), set_statistic(m, golds, preds, task.labels or []),
                                         conf, seed=seed, groups=groups)
        else:  # set-level figures without a resampling rule are shown without an interval
            out[m] = Interval(value, value, value, conf)
    return out


def rank_row(task: Task, predictor: Predictor, lever: Lever, ctx: LeverContext, options: Any, artifact: Artifact,
             predictions: list[Prediction], name: str) -> tuple[list[Prediction], dict[str, Any]]:
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

    natural = natural_method(lever)
    setting = task.scoring.option_ranking
    parse = lambda raw: parse_output(task, raw)  # noqa: E731
    if any(answers_by_method(p) is None for p in predictions):
        return predictions, {"method": None, "natural": natural, "why": "unavailable", "held_out": None,
                             "reason": "this model's answers carry no log-likelihood per label (an API "
                                       "model): no ranking method applies"}
    if setting != AUTO:  # `predict` has applied the forced method to every answer already
        return predictions, {
            "method": setting, "natural": natural, "why": "forced", "held_out": None,
            "reason": f"forced by scoring.option_ranking: {setting} (task.yaml or --set)"}
    held = lever.held_out(ctx, options, artifact)
    if held is None or not held.examples:
        return [with_method(p, natural, parse) for p in predictions], {
            "method": natural, "natural": natural, "why": "natural", "held_out": None,
            "reason": f"{natural}, the lever's natural method; it has no held-out train items to check it on"}
    n = len(held.examples)
    preds, _, _ = predictor.predict(lever, artifact, held.examples, f"label ranking on {_items(n, held.split)}",
                               row_name=name, build=held.build)
    answers = [answers_by_method(p) for p in preds]
    methods = [natural, *(m for m in OPTION_RANKINGS if m != natural and all(a and m in a for a in answers))]
    golds = [ex.output for ex in held.examples]
    metric, conf = task.target.metric, round(task.target.confidence, 10)
    texts = {m: [a[m] for a in answers if a] for m in methods}  # the label each method picks: the raw answer
    under = {m: [parse(x) for x in texts[m]] for m in methods}
    per_method = {m: score(task, golds, under[m], texts[m]) for m in methods}
    if all(metric in sc.per_item for sc in per_method.values()):
        choice = choose_paired(natural, {m: sc.per_item[metric] for m, sc in per_method.items()},
                               metric=metric, alpha=round(1 - conf, 10), seed=task.seed)
    else:  # macro-F1: a set statistic
        choice = choose_paired(natural, metric=metric, alpha=round(1 - conf, 10), seed=task.seed, n=n,
                               set_statistic={m: set_statistic(metric, golds, under[m], task.labels or [])
                                              for m in methods})
    method = choice.chosen
    if not held.priced:  # answers asked only for this choice are part of setting the lever up
        from advisor.leverkit.dev_choice import cost_of

        secs, usd = cost_of(artifact.backend, preds)
        artifact.setup_seconds += secs
        artifact.setup_usd += usd
    scores = ", ".join(f"{m} {v:.3f}" for m, v in choice.scores.items())
    if choice.switched:
        reason = (f"switched from {natural} to {method} on {_items(n, held.split)} ({scores}; {choice.rule}, "
                  f"p={choice.p_values.get(method)!s})" if choice.p_values.get(method) is not None else
                  f"switched from {natural} to {method} on {_items(n, held.split)} ({scores}; {choice.rule})")
    elif choice.rule == RULE_TOO_FEW:
        reason = (f"{natural}, the lever's natural method: {_items(n, held.split)} "
                  f"{'is' if n == 1 else 'are'} too few to test another against it")
    else:
        reason = (f"{natural}, the lever's natural method, kept: no other method was better beyond noise on "
                  f"{_items(n, held.split)} ({scores}; {choice.rule})")
    record = {"method": method, "natural": natural, "why": "switched" if choice.switched else "natural",
              "reason": reason, "held_out": {"split": held.split, **choice.as_dict()}}
    return [with_method(p, method, parse) for p in predictions], record


def ranking_sensitivity(task: Task, data: Dataset, results: list[LeverResult], verdict: Verdict,
                        option_token_counts: Callable[[list[str]], dict[str, int]] | None) -> dict[str, Any]:
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

    setting = task.scoring.option_ranking
    info: dict[str, Any] = {"option_ranking": setting}
    warnings: list[str] = []
    counts = option_token_counts
    if counts is not None:
        info["option_tokens"] = counts(list(task.labels or []))
        warning = label_length_warning(info["option_tokens"], setting)
        if warning:
            warnings.append(warning)
    t = task.target
    metric, threshold = t.metric, t.threshold
    golds = [ex.output for ex in data.eval]
    groups = eval_groups(data)

    def judged(preds: list[Any], raws: list[str]) -> tuple[float, str]:  # a row's state under another method
        sc = score(task, golds, preds, raws)
        if metric in sc.per_item:
            found = assess(sc.per_item[metric], threshold, t.confidence, t.rule, groups=groups, seed=task.seed)
        else:
            found = assess(None, threshold, t.confidence, t.rule, n=len(golds), seed=task.seed,
                           set_statistic=set_statistic(metric, golds, preds, task.labels or []))
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
            preds = [parse_output(task, x) for x in texts]
            value, state = judged(preds, texts)
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
    warnings += wording_warnings(task, results)
    if sensitivity:
        info["sensitivity"] = sensitivity
    if warnings:
        info["warnings"] = warnings
    return info


def row_facts(row: Row | None, backend: Any, predictions: list[Any]) -> dict[str, Any]:
    """What results.json adds to a lever row: lever, model, how labels were chosen, the price used."""
    if row is None:
        return {}
    out: dict[str, Any] = {"lever": row.lever, "model": row.model.label}
    paths = [p.context["classification_path"] for p in predictions if "classification_path" in p.context]
    if paths:
        out["classification_path"] = max(set(paths), key=paths.count)
        out["unmappable"] = sum(1 for p in predictions if p.context.get("unmappable"))
    elif any(p.context.get("option_scores") is not None for p in predictions):
        out["classification_path"] = "option_loglik"
    if hasattr(backend, "price_source"):  # an API backend: the price it was charged at
        from advisor.pricing import describe

        out["price"] = describe(backend.price, backend.price_source)
        out["token_estimate"] = backend.token_method
    return out


def check_records(task: Task) -> list[CheckRecord]:
    """The task's checks (advisor.checks) as the record keeps them: name, kind, the metrics each adds
    (`metrics()`) and what it requires in words (`rule()`)."""
    return [CheckRecord(name=c.name, kind=c.kind, rule=c.rule(), metrics=c.metrics()) for c in task.checks]
