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

from advisor.backends.classify_api import TOP_LOGPROBS
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
    from advisor.choice import RULE_TOO_FEW
    from advisor.ranking import answers_by_method, with_method
    from advisor.types import OPTION_RANKINGS

    natural = natural_method(lever)
    setting = task.scoring.option_ranking
    parse = lambda raw: parse_output(task, raw)  # noqa: E731
    if any(answers_by_method(p) is None for p in predictions):
        return predictions, {"method": None, "natural": natural, "why": "unavailable", "held_out": None,
                             "reason": "this row's answers carry no log-likelihood per label (an API model "
                                       "answering by a JSON-schema enum or free text): no ranking method applies"}
    if setting != AUTO:  # `predict` has applied the forced method to every answer already
        return predictions, {
            "method": setting, "natural": natural, "why": "forced", "held_out": None,
            "reason": f"forced by scoring.option_ranking: {setting} (task.yaml or --set)" + _scope(predictions)}
    held = lever.held_out(ctx, options, artifact)
    if held is None or not held.examples:
        return [with_method(p, natural, parse) for p in predictions], {
            "method": natural, "natural": natural, "why": "natural", "held_out": None,
            "reason": f"{natural}, the lever's natural method; it has no held-out train items to check it on"
                      + _scope(predictions)}
    n = len(held.examples)
    preds, _, _ = predictor.predict(lever, artifact, held.examples, f"label ranking on {_items(n, held.split)}",
                               row_name=name, build=held.build)
    answers = [answers_by_method(p) for p in preds]
    methods = [natural, *(m for m in OPTION_RANKINGS if m != natural and all(a and m in a for a in answers))]
    texts = {m: [a[m] for a in answers if a] for m in methods}  # the label each method picks: the raw answer
    # An item the backend found to be no label stays unscored under every method.
    under = {m: [None if p.context.get("unmappable") else parse(x) for p, x in zip(preds, texts[m])]
             for m in methods}
    choice = _paired_choice(task, [ex.output for ex in held.examples], natural, under, texts)
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
              "reason": reason + _scope(predictions), "held_out": {"split": held.split, **choice.as_dict()}}
    return [with_method(p, method, parse) for p in predictions], record


def _scope(predictions: list[Prediction]) -> str:
    """A reason's tail when the ranking saw only each label's first token (an API model)."""
    if any(p.context.get("ranking_scope") == "first token" for p in predictions):
        return ("; ranked over each label's first token, the only one a chat API scores (sum, mean and "
                "first_token coincide there, and so do calibrated and calibrated_prefix)")
    return ""


def _paired_choice(task: Task, golds: list[Any], default: str, under: dict[str, list[Any]],
                   texts: dict[str, list[str]]) -> Any:
    """advisor.choice.choose_paired over held-out items: candidate -> its outputs (`under`) and raw
    answers (`texts`), scored on the task's target metric (a set statistic for macro-F1)."""
    from advisor.choice import choose_paired

    metric, conf = task.target.metric, round(task.target.confidence, 10)
    per = {c: score(task, golds, under[c], texts[c]) for c in under}
    if all(metric in sc.per_item for sc in per.values()):
        return choose_paired(default, {c: sc.per_item[metric] for c, sc in per.items()},
                             metric=metric, alpha=round(1 - conf, 10), seed=task.seed)
    return choose_paired(default, metric=metric, alpha=round(1 - conf, 10), seed=task.seed, n=len(golds),
                         set_statistic={c: set_statistic(metric, golds, under[c], task.labels or [])
                                        for c in under})


def choose_path(task: Task, predictor: Predictor, lever: Lever, ctx: LeverContext, options: Any,
                artifact: Artifact, name: str) -> dict[str, Any] | None:
    """An API model's classification path for one row, chosen on the row's held-out train items
    (`lever.held_out`; never eval) before its eval answers are asked: every path the server
    supports (advisor/backends/classify_api.py PATHS) answers them, each ranked by the lever's
    natural method, and the default (the first, cheapest) is kept unless another is better
    beyond noise (advisor.choice.choose_paired, the rule `rank_row` uses). Sets
    `predictor.paths[name]`; the held-out answers of every path but the one `rank_row` prices
    again are added to the artifact's setup cost. Returns results.json `classification_choice`
    (chosen, default, why: forced | only | natural | switched, reason, held_out with each path's
    score and off-label share), or None for a backend that ranks whole options (a local model).
    """
    from advisor.leverkit.dev_choice import cost_of
    from advisor.ranking import answers_by_method, with_method

    backend = artifact.backend
    paths = backend.classification_paths(list(task.labels or []))
    if not paths:
        return None
    default = paths[0]
    predictor.paths[name] = default
    left = "".join(f" (not tried: {n})" for n in backend.classification_notes(list(task.labels or [])))
    if len(paths) == 1:
        forced = getattr(getattr(backend, "settings", None), "classification", "auto") != "auto"
        return {"chosen": default, "default": default, "why": "forced" if forced else "only", "held_out": None,
                "reason": (f"{default}, forced by openai.classification" if forced else
                           f"{default}, the only path this server supports for these labels{left}")}
    held = lever.held_out(ctx, options, artifact)
    if held is None or not held.examples:
        return {"chosen": default, "default": default, "why": "natural", "held_out": None,
                "reason": f"{default}, the default: the lever holds no train items out to try the others on{left}"}
    n, natural = len(held.examples), natural_method(lever)
    parse = lambda raw: parse_output(task, raw)  # noqa: E731
    golds = [ex.output for ex in held.examples]
    by_path: dict[str, list[Prediction]] = {}
    for path in paths:
        preds, _, _ = predictor.predict(lever, artifact, held.examples, f"{path} on {_items(n, held.split)}",
                                        row_name=name, build=held.build, path=path)
        if path not in backend.classification_paths(list(task.labels or [])):
            continue  # the server turned out not to support it (its answers came by another path)
        by_path[path] = [with_method(p, natural, parse) if answers_by_method(p) is not None else p for p in preds]
    if default not in by_path:
        default = next(iter(by_path))
    under = {p: [x.output for x in preds] for p, preds in by_path.items()}
    texts = {p: [x.raw for x in preds] for p, preds in by_path.items()}
    choice = _paired_choice(task, golds, default, under, texts)
    chosen = choice.chosen
    predictor.paths[name] = chosen
    for path, preds in by_path.items():
        # rank_row prices the chosen path's held-out answers itself when they carry a ranking; a dev
        # search (held.priced) priced the default path's already.
        again = path == chosen and not held.priced and all(answers_by_method(p) is not None for p in preds)
        if not again and not (held.priced and path == paths[0]):
            secs, usd = cost_of(backend, preds)
            artifact.setup_seconds += secs
            artifact.setup_usd += usd
    off = {p: round(sum(1 for x in preds if x.context.get("off_label")) / n, 4) for p, preds in by_path.items()}
    scores = ", ".join(f"{p} {v:.3f}" for p, v in choice.scores.items())
    if choice.switched:
        reason = f"switched from {default} to {chosen} on {_items(n, held.split)} ({scores}; {choice.rule}){left}"
    else:
        reason = (f"{default}, the default, kept: no other path was better beyond noise on "
                  f"{_items(n, held.split)} ({scores}; {choice.rule}){left}")
    return {"chosen": chosen, "default": default, "why": "switched" if choice.switched else "natural",
            "reason": reason, "held_out": {"split": held.split, "off_label": off, **choice.as_dict()}}


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


OFF_LABEL_WARN = 0.10  # share of items answered off-label above which the run warns (see off_label)


def off_label(predictions: list[Prediction]) -> dict[str, Any]:
    """How often an API model did not answer with a label (results.json `off_label`): `items`, their
    `share` of the row, `label_mass` (first-token path: the mean probability the model put on label
    tokens, 0-1; None on other paths; the items with no label at all are the row's `unmappable`),
    `label_tokens` (where the label tokens came from, and whether exactly), `labels_unseen_items`
    (first-token path: items where some label had no token among the top TOP_LOGPROBS, so it
    could not be chosen) and `warning` when the share is above OFF_LABEL_WARN.

    An off-label item's label is the constrained choice among label tokens (or the schema's enum),
    which a deployment gets only by asking the same way. OFF_LABEL_WARN (one item in ten) is a
    judgement, not a measurement: it is the point past which a client reading the figure as "the
    model answers correctly this often" would be wrong on more than one query in ten.
    """
    n = len(predictions) or 1
    items = sum(1 for p in predictions if p.context.get("off_label"))
    masses = [float(p.context["label_mass"]) for p in predictions if p.context.get("label_mass") is not None]
    sources = {str(p.context["label_tokens"]): bool(p.context.get("label_tokens_exact"))
               for p in predictions if p.context.get("label_tokens")}
    unseen_by = [p.context["labels_unseen"] for p in predictions if p.context.get("labels_unseen") is not None]
    unseen = sum(1 for x in unseen_by if x)
    out: dict[str, Any] = {"items": items, "share": round(items / n, 4),
                           "label_mass": round(sum(masses) / len(masses), 4) if masses else None,
                           "label_tokens": [{"source": k, "exact": v} for k, v in sources.items()]}
    if unseen_by:  # first-token path: items where some label had no token among the top ones
        out["labels_unseen_items"] = unseen
    if items / n > OFF_LABEL_WARN:
        said = f"the model did not answer with a label on {items} of {len(predictions)} items ({items / n:.0%})"
        if masses:  # first-token path: a label was still chosen among the label tokens
            out["warning"] = (f"{said} (it put {out['label_mass']:.0%} of its first-token probability on label "
                              "tokens): its score is that of the constrained choice among the labels, which a "
                              "deployment gets only by asking the same way; it does not follow the answer "
                              "format on its own")
        else:  # a JSON-schema enum or free text: no label could be read from those answers
            out["warning"] = f"{said}: those answers are unmappable and scored wrong"
        if unseen:
            out["warning"] += (f". On {unseen} items some label's first token was not among the "
                               f"{TOP_LOGPROBS} most likely the server returns, so that label could not be chosen "
                               "there: the same model ranking whole labels locally can score higher")
    if any(not v for v in sources.values()):
        out["approximate"] = ("no tokenizer for this model (no /tokenize on the server, no openai.tokenizer): "
                              "label tokens were matched by string prefix, which can credit a word's first "
                              "letters to a label")
    return out


def row_facts(row: Row | None, backend: Any, predictions: list[Any]) -> dict[str, Any]:
    """What results.json adds to a lever row: lever, model, how labels were chosen, the price used."""
    if row is None:
        return {}
    out: dict[str, Any] = {"lever": row.lever, "model": row.model.label}
    paths = [p.context["classification_path"] for p in predictions if "classification_path" in p.context]
    if paths:
        out["classification_path"] = max(set(paths), key=paths.count)
        out["unmappable"] = sum(1 for p in predictions if p.context.get("unmappable"))
        out["off_label"] = off_label(predictions)
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
