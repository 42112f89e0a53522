"""The one shared scorer: the same code scores every lever, one metric set per task kind.

Every metric is a mean of per-item scores where it can be, so intervals and paired
tests can resample items. Macro-F1 is not a mean; its interval resamples whole sets.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from advisor.checks import run_checks
from advisor.jsontext import parse_json_object  # the lenient JSON parse, shared with the checks
from advisor.spec import Task
from advisor.textnorm import answer_tokens, canonical_text, normalize_answer


@dataclass
class Scores:
    """Scores for one lever on one eval set.

    With `checks` in the task, their metrics (advisor.checks.check_metrics) are in `per_item` and
    `aggregate` like any other, `details["checks"]` holds name -> {"rate", "failures": {kind: items}},
    and `check_reasons` name -> one reason per item ("" for a pass). Without gold outputs (an eval
    set whose target is a check) the kind's gold metrics are absent, not zero.
    """

    per_item: dict[str, list[float]]  # metric -> one score per eval item (item-mean metrics)
    aggregate: dict[str, float]  # metric -> value over the whole set
    details: dict[str, Any] = field(default_factory=dict)  # confusion matrix, per-label, per-field, checks
    check_reasons: dict[str, list[str]] = field(default_factory=dict)  # check (and pass_all) -> reason per item


# -- parsing model output ------------------------------------------------------------------------


def parse_output(task: Task, raw: str) -> Any:
    """Turn raw model text into the kind of value the task's outputs are."""
    if task.kind == "classification":
        raw = raw.strip()
        labels = task.labels or []
        if raw in labels:
            return raw
        # Free text: the first label named as a whole word wins; otherwise no label.
        hits = [(m.start(), lab) for lab in labels for m in [re.search(rf"\b{re.escape(lab)}\b", raw)] if m]
        return min(hits)[1] if hits else None
    if task.kind == "extraction":
        return parse_json_object(raw)
    # First line only: small models keep talking after the answer.
    return raw.strip().split("\n")[0].strip()


# -- metrics -------------------------------------------------------------------------------------


def token_f1(pred: str, gold: str) -> float:
    p, g = answer_tokens(pred), answer_tokens(gold)
    if not p and not g:
        return 1.0
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def _canonical(v: Any) -> Any:
    """A value as compared: text in its `canonical_text` form (case, Unicode forms and spacing folded), numbers as their text, objects and lists
    compared by content (objects regardless of key order), nulls and empty text dropped."""
    if isinstance(v, dict):
        return {k: c for k, c in ((k, _canonical(x)) for k, x in v.items()) if c is not None} or None
    if isinstance(v, list):
        items = [_canonical(x) for x in v]
        return items or None
    if v is None:
        return None
    s = canonical_text(str(v))
    return s or None


def _field_value(v: Any) -> str | None:
    """One field's comparable form: a string, equal for values equal in content."""
    c = _canonical(v)
    if c is None or isinstance(c, str):
        return c
    return json.dumps(c, sort_keys=True, ensure_ascii=False)  # sorted keys: structural, not textual


def field_counts(pred: dict[str, Any] | None, gold: dict[str, Any]) -> tuple[int, int, int]:
    """(true positives, predicted non-null fields, gold non-null fields) for one object."""
    pred = pred or {}
    p = {k: _field_value(v) for k, v in pred.items() if _field_value(v) is not None}
    g = {k: _field_value(v) for k, v in gold.items() if _field_value(v) is not None}
    tp = sum(1 for k, v in p.items() if g.get(k) == v)
    return tp, len(p), len(g)


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def macro_f1(golds: list[str], preds: list[str | None], labels: list[str]) -> float:
    """Mean F1 over the labels that occur in gold or predictions (scikit-learn's default)."""
    present = [lab for lab in labels if lab in set(golds) or lab in set(preds)]
    f1s = []
    for lab in present:
        tp = sum(1 for g, p in zip(golds, preds) if g == lab and p == lab)
        _, _, f1 = _prf(tp, sum(1 for p in preds if p == lab), sum(1 for g in golds if g == lab))
        f1s.append(f1)
    return sum(f1s) / len(f1s) if f1s else 0.0


SET_METRICS = ("macro_f1",)  # metrics of a whole set, not means of per-item scores


def set_statistic(metric: str, golds: Sequence[Any], preds: Sequence[Any],
                  labels: Sequence[str]) -> Callable[[Sequence[int]], float]:
    """A set-level metric as a function of item indices, for resampling (bootstrap intervals, paired
    differences, label-ranking choices): `f(idx)` is the metric over items `idx` (shape (k,), ints;
    repeats allowed). `golds`, `preds`: shape (n,), aligned. The one place a set metric is resampled.

    Raises ValueError for a metric not in SET_METRICS."""
    if metric not in SET_METRICS:
        raise ValueError(f"{metric} is not a set-level metric (one of {', '.join(SET_METRICS)})")
    labs = list(labels)

    def f(idx: Sequence[int]) -> float:
        return macro_f1([golds[i] for i in idx], [preds[i] for i in idx], labs)

    return f


def has_gold(golds: Sequence[Any]) -> bool:
    """Whether every item has a gold output (None: an eval item without one, allowed when the target
    is a check); gold metrics are computed only then, over every item or none."""
    return all(g is not None for g in golds)


def score(task: Task, golds: list[Any], preds: list[Any], raws: Sequence[str] | None = None) -> Scores:
    """Score parsed predictions against gold outputs, in eval order, and run the task's checks on the
    raw outputs (`raws`: the model's text per item, `Prediction.raw`; for label ranking the label).

    `golds`, `preds`, `raws`: shape (n,), aligned. A gold of None is an item without one: when any is
    None the kind's gold metrics are left out (not zero), and only the checks score the items.
    Raises ValueError when the lengths differ, when the task has checks and `raws` is None, or when
    there is no gold and no check to score with.
    """
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold outputs but {len(preds)} predictions")
    if task.checks and raws is None:
        raise ValueError(f"task {task.name} declares checks: score() needs the raw outputs (raws=)")
    if raws is not None and len(raws) != len(preds):
        raise ValueError(f"{len(raws)} raw outputs but {len(preds)} predictions")
    if has_gold(golds):
        if task.kind == "classification":
            scores = _score_classification(task.labels or [], golds, preds)
        elif task.kind == "extraction":
            scores = _score_extraction(golds, preds)
        else:
            scores = _score_text(golds, preds)
    elif not task.checks:
        raise ValueError(f"{sum(g is None for g in golds)} of {len(golds)} items have no gold output and the task "
                         "declares no checks: nothing to score them with")
    else:
        scores = Scores(per_item={}, aggregate={})
    if task.checks:
        found = run_checks(task.checks, list(raws or []))
        for name, values in found.per_item.items():
            scores.per_item[name] = values
            scores.aggregate[name] = sum(values) / len(values) if values else 0.0
        scores.details["checks"] = found.summary()
        scores.check_reasons = found.reasons
    return scores


def _score_classification(labels: list[str], golds: list[str], preds: list[str | None]) -> Scores:
    correct = [1.0 if g == p else 0.0 for g, p in zip(golds, preds)]
    per_label = {}
    for lab in labels:
        tp = sum(1 for g, p in zip(golds, preds) if g == lab and p == lab)
        n_pred = sum(1 for p in preds if p == lab)
        n_gold = sum(1 for g in golds if g == lab)
        precision, recall, f1 = _prf(tp, n_pred, n_gold)
        per_label[lab] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
    cols = [*labels, None]
    confusion = [[sum(1 for g, p in zip(golds, preds) if g == gl and p == pl) for pl in cols] for gl in labels]
    return Scores(
        per_item={"accuracy": correct},
        aggregate={
            "accuracy": sum(correct) / len(correct),
            "macro_f1": macro_f1(golds, preds, labels),
        },
        details={
            "per_label": per_label,
            "confusion": {"labels": labels, "columns": [*labels, "(none)"], "matrix": confusion},
        },
    )


def _score_extraction(golds: list[dict[str, Any]], preds: list[dict[str, Any] | None]) -> Scores:
    valid = [1.0 if isinstance(p, dict) else 0.0 for p in preds]
    exact, item_f1 = [], []
    totals = [0, 0, 0]
    per_field: dict[str, list[int]] = {}
    for g, p in zip(golds, preds):
        gn = {k: _field_value(v) for k, v in g.items()}
        pn = {k: _field_value(v) for k, v in (p or {}).items()}
        keys = set(gn) | set(pn)
        exact.append(1.0 if p is not None and all(gn.get(k) == pn.get(k) for k in keys) else 0.0)
        tp, n_pred, n_gold = field_counts(p, g)
        totals = [totals[0] + tp, totals[1] + n_pred, totals[2] + n_gold]
        # An item with nothing to find and nothing found is perfect.
        item_f1.append(1.0 if n_pred == n_gold == 0 else _prf(tp, n_pred, n_gold)[2])
        for k in keys:
            c = per_field.setdefault(k, [0, 0, 0])
            c[0] += int(gn.get(k) is not None and gn.get(k) == pn.get(k))
            c[1] += int(pn.get(k) is not None)
            c[2] += int(gn.get(k) is not None)
    precision, recall, f1 = _prf(*totals)
    n = len(golds)
    return Scores(
        per_item={"exact_match": exact, "json_valid": valid, "field_f1": item_f1},
        aggregate={
            "exact_match": sum(exact) / n,
            "json_valid": sum(valid) / n,
            "field_f1": sum(item_f1) / n,
            "field_precision": precision,
            "field_recall": recall,
            "field_f1_micro": f1,
        },
        details={
            "per_field": {
                k: dict(zip(("precision", "recall", "f1"), _prf(*c))) for k, c in sorted(per_field.items())
            }
        },
    )


def contains_answer(pred: str, gold: str) -> float:
    """1.0 when the normalized gold answer's tokens appear, in order and next to each other, among
    the normalized output's tokens (`advisor.textnorm.answer_tokens`): whole tokens only, so "5" is
    not found in "-5", "3.5", "15" or "5%", nor "US" in "USA".

    It tells "right fact, wrong format" ("The code is 028.") from a wrong fact, which
    exact match alone cannot; it is a diagnostic beside exact match, not a replacement.
    """
    p, g = answer_tokens(pred), answer_tokens(gold)
    if not g:
        return 1.0 if not p else 0.0
    n = len(g)
    return 1.0 if any(p[i : i + n] == g for i in range(len(p) - n + 1)) else 0.0


def _score_text(golds: list[str], preds: list[str | None]) -> Scores:
    exact = [1.0 if normalize_answer(p or "") == normalize_answer(g) else 0.0 for g, p in zip(golds, preds)]
    f1 = [token_f1(p or "", g) for g, p in zip(golds, preds)]
    contains = [contains_answer(p or "", g) for g, p in zip(golds, preds)]
    n = len(golds)
    return Scores(
        per_item={"exact_match": exact, "token_f1": f1, "contains": contains},
        aggregate={"exact_match": sum(exact) / n, "token_f1": sum(f1) / n, "contains": sum(contains) / n},
    )


# Labels whose token counts differ by this factor and by at least this many tokens get a warning.
LABEL_LENGTH_RATIO, LABEL_LENGTH_GAP = 2.0, 3


def label_length_warning(option_tokens: dict[str, int], method: str) -> str | None:
    """A warning when the labels' token counts differ a lot (the longest at least twice the
    shortest and 3 tokens more), or None. `option_tokens`: label -> tokens (without end-of-turn)."""
    if not option_tokens:
        return None
    short = min(option_tokens, key=lambda k: option_tokens[k])
    long = max(option_tokens, key=lambda k: option_tokens[k])
    a, b = option_tokens[short], option_tokens[long]
    if b < LABEL_LENGTH_RATIO * max(a, 1) or b - a < LABEL_LENGTH_GAP:
        return None
    cut = long if len(long) <= 30 else long[:27] + "..."
    if method == "sum":
        advice = ("summed log-likelihood favours the shorter label on a model not trained on these labels; "
                  "use scoring.option_ranking: auto (calibrated for the prompt levers, sum only for a fine-tuned "
                  "adapter, which learned the labels)")
    elif method == "auto":
        advice = ("under scoring.option_ranking: auto the prompt levers rank with 'calibrated', which corrects "
                  "for length though a long label's words still sway it, and a fine-tuned adapter with 'sum', "
                  "which it was trained on; each row moves to another method only when its held-out train items "
                  "say so, and scoring.sensitivity in results.json says how many predictions each other method, "
                  "calibrated_prefix included (it ignores the words after the labels part), would change")
    elif method in ("calibrated_prefix", "first_token"):
        advice = f"ranked with '{method}', which reads each label only up to where the labels part"
    else:
        advice = (f"ranked with '{method}', which corrects for length, but the words of a long label still "
                  "sway it (scoring.sensitivity in results.json says how many predictions calibrated_prefix, "
                  "which ignores them, would change)")
    return (f"labels differ a lot in length: '{short}' is {a} token{'s' * (a != 1)}, '{cut}' {b}; {advice}")
