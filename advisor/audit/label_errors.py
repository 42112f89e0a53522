"""Likely label errors: examples whose gold answer is probably simply wrong.

Classification — confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70:1373–1411, 2021), through cleanlab 2.9 (Apache-2.0), never
our own re-implementation:

1. Two views of every input: its sentence embedding (`audit.embedding`, all-MiniLM-L6-v2 by default,
   384-d unit vectors) and its word 1–2-gram TF-IDF (sublinear term frequency).
2. For each view a multinomial logistic regression (scikit-learn, saga solver) gives out-of-fold
   probabilities: stratified K-fold cross-validation, so no example is scored by a model that saw
   its label. C is picked per view from a small grid by the out-of-fold log-loss of the labels as
   given (no knowledge of which labels are wrong). The two views' probabilities are averaged.
3. `cleanlab.filter.find_label_issues(labels, pred_probs, filter_by="prune_by_class")` flags the
   suspects (per given label, as many examples as the confident joint estimates are mislabelled, those
   with the lowest probability of that label);
   `cleanlab.rank.get_label_quality_scores` (self-confidence: the out-of-fold probability of the given
   label) ranks them. A suspect's score is 1 − that probability: 1 is surely wrong, 0 surely right.
   Its suggested label is the likeliest other label.

Eval is checked too and reported apart (an eval label error corrupts the verdict itself): the views'
models are fitted on all of train and score eval (never fitted on eval labels); cleanlab then runs over
train's out-of-fold and eval's probabilities together, so its per-class thresholds come mostly from
train, and eval's suspects are listed on their own.

Why two views (bench/label_errors.py, TREC train with 4% of labels flipped at random, seeds 1–3): the
embedding alone puts 0.70–0.73 of the planted errors in the top k (k = number planted) and its flagged
set is 34–36% errors at recall 0.84–0.86 (the issue's floor); averaging in the TF-IDF view (question words
carry TREC's classes) gives 0.82–0.83 top-k precision and flagged precision 0.57–0.67 at recall 0.89–0.91.
prune_by_class keeps recall high; cleanlab's other rules trade it for precision ("both": 0.64–0.71 at
0.76–0.86; low_self_confidence: 0.77–0.88 at 0.78–0.83). The check takes about 0.2× the time of
embedding the same texts.

Extraction (JSON field outputs) — the counterpart of a wrong label, by rule, no model:

- `field-not-in-input`: a field that copies text (at least 90% of its gold values occur in their
  input, compared as word tokens after `canonical_text`, punctuation dropped) whose value here does
  not occur in the input. Score: 1 − the share of the value's words found in the input.
- `field-pattern`: a field whose values nearly all take one of at most 3 forms (character classes with
  run lengths: "60614" is 9{5}, "60614-1234" 9{5}-9{4}; the commonest forms covering ≥ 95% of values)
  and a value of another form. Score: 1 − the share of values having this value's form.

Where the data is too small to say anything, the check is skipped and the finding says why: fewer than
`MIN_PER_LABEL` train examples of a label (those examples are left out, the rest checked), fewer than
`MIN_TRAIN` checkable train examples or fewer than two labels (nothing checked).
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advisor.audit.sources import Record
from advisor.data import stable_hash
from advisor.errors import BackendError
from advisor.textnorm import canonical_text

FOLDS = 5
MIN_PER_LABEL = 10  # a label with fewer train examples cannot be learned out of fold, nor thresholded
MIN_TRAIN = 100  # below this, out-of-fold probabilities say little about any single label
C_GRID = {"embedding": (1.0, 3.0, 10.0), "tfidf": (10.0, 30.0, 100.0)}
METHOD = (f"confident learning (Northcutt et al. 2021; cleanlab find_label_issues, prune_by_class) on {FOLDS}-fold "
          "out-of-fold probabilities of logistic regressions on embeddings and word TF-IDF")
COPY_SHARE = 0.90  # a field "copies text" when this share of its values occur in their input
PATTERN_COVER = 0.95  # the commonest forms covering this share of a field's values are its pattern...
PATTERN_FORMS = 3  # ...when there are at most this many of them
MIN_FIELD_VALUES = 20  # fewer values of a field: no rule about them can be learned

_WORD = re.compile(r"\w+")


def record_hash(input_text: str, output: Any) -> str:
    """16 hex digits of sha256 over an item's input and its whole gold output: the review loop's way to
    tell that an item is still the one a reviewer saw."""
    return stable_hash({"input": input_text, "output": output})[:16]


@dataclass
class Suspect:
    """One item whose gold answer is likely wrong.

    `check`: "label-error", "field-not-in-input" or "field-pattern". `given`: the label (or, with `field`,
    that field's value); `suggested`: the label the data suggests (None where the data cannot say).
    `score` in [0, 1]: higher is likelier wrong; suspects are ranked by it. `hash`: `record_hash` of the
    item as the audit read it."""

    check: str
    split: str
    id: str
    where: str
    input: str
    given: Any
    suggested: Any
    score: float
    hash: str
    field: str | None = None
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "split": self.split, "id": self.id, "where": self.where, "field": self.field,
                "given": self.given, "suggested": self.suggested, "score": round(self.score, 4), "why": self.why}


@dataclass
class LabelCheck:
    """What the classification check did: suspects per split, and why anything was not checked.

    `skipped`: the reason nothing was checked (None when it ran). `left_out`: label -> train count for
    labels with too few examples to check. `checked`: items checked per split. `seconds`: wall time of
    the embedding (`embed`) and of everything else (`fit`: features, cross-validation, cleanlab)."""

    suspects: dict[str, list[Suspect]] = field(default_factory=lambda: {"train": [], "eval": []})
    checked: dict[str, int] = field(default_factory=lambda: {"train": 0, "eval": 0})
    skipped: str | None = None
    left_out: dict[str, int] = field(default_factory=dict)
    chosen_c: dict[str, float] = field(default_factory=dict)
    oof_accuracy: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def out_of_fold_probabilities(features: np.ndarray | Any, labels: np.ndarray, n_classes: int, *,
                              grid: Sequence[float], folds: int = FOLDS, seed: int = 0) -> tuple[np.ndarray, float]:
    """(n, n_classes) out-of-fold class probabilities of a multinomial logistic regression on `features`
    ((n, d) dense or sparse), with C the grid value whose out-of-fold log-loss on `labels` ((n,) ints in
    [0, n_classes)) is lowest; returns them and that C. Stratified `folds`-fold, shuffled with `seed`.
    Every class needs at least `folds` examples (scikit-learn raises ValueError otherwise)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    best: tuple[float, float, np.ndarray] | None = None
    for c in grid:
        model = LogisticRegression(C=c, solver="saga", max_iter=500, tol=1e-3, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # tol 1e-3: ranks settle long before
            probs = cross_val_predict(model, features, labels, cv=cv, method="predict_proba")
        loss = log_loss(labels, probs, labels=list(range(n_classes)))
        if best is None or loss < best[0]:
            best = (loss, c, probs)
    assert best is not None
    return best[2], best[1]


def _fit_predict(features: Any, labels: np.ndarray, c: float, other: Any, seed: int) -> np.ndarray:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, solver="saga", max_iter=500, tol=1e-3, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, labels)
    return model.predict_proba(other)


def find_label_errors(vectors: np.ndarray, texts: Sequence[str], labels: Sequence[str], classes: Sequence[str], *,
                      eval_vectors: np.ndarray | None = None, eval_texts: Sequence[str] = (),
                      eval_labels: Sequence[str] = (), folds: int = FOLDS, seed: int = 0,
                      views: Sequence[str] = ("embedding", "tfidf"), filter_by: str = "prune_by_class",
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The classification check on arrays (see the module docstring for the method).

    `vectors`: (n, d) train embeddings; `texts`, `labels`: n train inputs and labels, every label in
    `classes` and every class with at least `folds` examples. `eval_*`: the same for eval (m items; labels
    outside `classes` are not allowed here either). Returns `(flagged, score, suggested, info)` over the
    n + m items, train first: `flagged` (bool), `score` (1 − the probability of the given label),
    `suggested` (index into `classes` of the likeliest other label); `info` has the chosen C per view
    and the out-of-fold accuracy on train. Raises ValueError for a class with fewer than `folds` items.
    `views` and `filter_by` (cleanlab's) are for measuring alternatives (bench/label_errors.py); the
    audit uses the defaults.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.feature_extraction.text import TfidfVectorizer

    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[lb] for lb in labels])
    y_eval = np.array([index[lb] for lb in eval_labels], dtype=int)
    k = len(classes)
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(list(texts) + list(eval_texts))  # no labels
    words, eval_words = tfidf.transform(texts), tfidf.transform(eval_texts) if len(eval_texts) else None
    used = [v for v in (("embedding", vectors, eval_vectors), ("tfidf", words, eval_words)) if v[0] in views]
    probs, eval_probs, chosen = np.zeros((len(y), k)), np.zeros((len(y_eval), k)), {}
    for name, train_x, eval_x in used:
        p, c = out_of_fold_probabilities(train_x, y, k, grid=C_GRID[name], folds=folds, seed=seed)
        probs += p / len(used)
        chosen[name] = c
        if len(y_eval):
            eval_probs += _fit_predict(train_x, y, c, eval_x, seed) / len(used)
    all_probs = np.vstack([probs, eval_probs])
    all_y = np.concatenate([y, y_eval])
    flagged = find_label_issues(all_y, all_probs, filter_by=filter_by, n_jobs=1)  # no worker processes
    quality = get_label_quality_scores(all_y, all_probs, method="self_confidence")
    others = all_probs.copy()
    others[np.arange(len(all_y)), all_y] = -1.0
    info = {"chosen_c": chosen, "oof_accuracy": float((probs.argmax(1) == y).mean())}
    return flagged, 1.0 - quality, others.argmax(1), info


def check_labels(task_labels: Sequence[str], train: list[Record], eval_: list[Record],
                 embed: Callable[[list[str]], np.ndarray], *, seed: int = 0) -> LabelCheck:
    """Suspect labels in train and eval (classification). `embed` maps texts to (n, d) unit vectors; it is
    called only when the data is large enough to check. When it raises BackendError (the embedding model
    is not installed or cannot be loaded) the check is skipped with that reason, not failed."""
    out = LabelCheck()
    counts = Counter(str(r.output) for r in train if r.output is not None)
    out.left_out = {lb: n for lb, n in sorted(counts.items()) if n < MIN_PER_LABEL}
    classes = [lb for lb in task_labels if counts.get(lb, 0) >= MIN_PER_LABEL]
    scope = set(classes)
    tr = [r for r in train if r.output is not None and str(r.output) in scope]
    ev = [r for r in eval_ if r.output is not None and str(r.output) in scope]
    if len(classes) < 2:
        out.skipped = (f"fewer than 2 labels have {MIN_PER_LABEL} or more train examples (train: "
                       + (", ".join(f"{lb} {n}" for lb, n in sorted(counts.items())) or "no labelled items")
                       + "); cross-validation needs them")
        return out
    if len(tr) < MIN_TRAIN:
        out.skipped = (f"only {len(tr)} train example(s) of labels with {MIN_PER_LABEL}+ examples; "
                       f"the check needs {MIN_TRAIN} for out-of-fold probabilities to say anything")
        return out
    t0 = time.perf_counter()
    try:
        vectors = np.asarray(embed([r.input for r in tr + ev]))
    except BackendError as e:
        out.skipped = f"the embedding model cannot be loaded: {e}"
        return out
    t1 = time.perf_counter()
    flagged, score, suggested, info = find_label_errors(
        vectors[: len(tr)], [r.input for r in tr], [str(r.output) for r in tr], classes,
        eval_vectors=vectors[len(tr):], eval_texts=[r.input for r in ev], eval_labels=[str(r.output) for r in ev],
        seed=seed)
    out.seconds = {"embed": round(t1 - t0, 3), "fit": round(time.perf_counter() - t1, 3)}
    out.chosen_c, out.oof_accuracy = info["chosen_c"], info["oof_accuracy"]
    out.checked = {"train": len(tr), "eval": len(ev)}
    for i, r in enumerate(tr + ev):
        if flagged[i]:
            out.suspects[r.split].append(Suspect(
                "label-error", r.split, r.id, r.where, r.input, str(r.output), classes[int(suggested[i])],
                float(score[i]), record_hash(r.input, r.output)))
    for split in out.suspects:
        out.suspects[split].sort(key=lambda s: -s.score)
    return out


# --- extraction -------------------------------------------------------------------------------------------

def words(text: str) -> list[str]:
    """The word tokens two texts are compared by: `canonical_text` (case folded, Unicode forms unified),
    then runs of word characters (punctuation dropped, so "Suite 5, Floor 2" holds "Suite 5 Floor 2")."""
    return _WORD.findall(canonical_text(text))


def occurs_in(value: str, text: str) -> bool:
    """Whether `value`'s words occur in `text` as a contiguous run of its words (a value with no word
    characters: whether its canonical form is a substring)."""
    v = words(value)
    if not v:
        return canonical_text(value) in canonical_text(text)
    return f" {' '.join(v)} " in f" {' '.join(words(text))} "


def form(value: Any) -> str:
    """A value's form: character classes with run lengths ("60614-1234" -> "9{5}-9{4}", "IL" -> "A{2}",
    "Il" -> "Aa"); digits 9, upper-case letters A, other letters a, any other character itself. A value
    that is not text: its JSON type ("number", "bool", "list", "object")."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"

    def cls(ch: str) -> str:
        if ch.isdigit():
            return "9"
        if ch.isalpha():
            return "A" if ch.isupper() else "a"
        return ch

    parts = []
    for kind, run in itertools.groupby(str(value), key=cls):
        n = len(list(run))
        parts.append(kind if n == 1 else f"{kind}{{{n}}}")
    return "".join(parts)


@dataclass
class FieldCheck:
    """What the extraction checks found. `copying`: field -> share of its values found in their input (for
    fields counted as copying text); `patterns`: field -> its forms (for fields with a pattern);
    `fields`: field -> non-null values seen; `suspects` per split."""

    suspects: dict[str, list[Suspect]] = field(default_factory=lambda: {"train": [], "eval": []})
    copying: dict[str, float] = field(default_factory=dict)
    patterns: dict[str, list[str]] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def check_fields(train: list[Record], eval_: list[Record]) -> FieldCheck:
    """Gold field values that do not occur in their input where the field copies text, and values whose
    form breaks the field's pattern (see the module docstring). Outputs that are not objects, and null
    values, are passed over."""
    out = FieldCheck()
    items = [r for r in train + eval_ if isinstance(r.output, dict)]
    values: dict[str, list[tuple[Record, Any]]] = {}
    for r in items:
        for key, value in r.output.items():
            if value is not None and not (isinstance(value, str) and not value.strip()):
                values.setdefault(key, []).append((r, value))
    for key, pairs in values.items():
        out.fields[key] = len(pairs)
        if len(pairs) < MIN_FIELD_VALUES:
            continue
        texts = [(r, v) for r, v in pairs if _scalar(v)]
        found = [occurs_in(str(v), r.input) for r, v in texts]
        share = sum(found) / len(texts) if texts else 0.0
        if texts and share >= COPY_SHARE:
            out.copying[key] = round(share, 4)
            for (r, v), ok in zip(texts, found):
                if ok:
                    continue
                vw, iw = words(str(v)), set(words(r.input))
                seen = sum(w in iw for w in vw) / len(vw) if vw else 0.0
                out.suspects[r.split].append(Suspect(
                    "field-not-in-input", r.split, r.id, r.where, r.input, v, None, 1.0 - seen,
                    record_hash(r.input, r.output), field=key,
                    why=f"{seen:.0%} of its words are in the input; {share:.0%} of '{key}' values are"))
        forms = Counter(form(v) for _, v in pairs)
        pattern, covered = [], 0
        for shape, n in forms.most_common():
            pattern.append(shape)
            covered += n
            if covered >= PATTERN_COVER * len(pairs):
                break
        if len(pattern) > PATTERN_FORMS or len(pattern) == len(forms):
            continue
        out.patterns[key] = pattern
        described = ", ".join(f"{s} ({forms[s]})" for s in pattern)
        for r, v in pairs:
            shape = form(v)
            if shape not in pattern:
                out.suspects[r.split].append(Suspect(
                    "field-pattern", r.split, r.id, r.where, r.input, v, None, 1.0 - forms[shape] / len(pairs),
                    record_hash(r.input, r.output), field=key,
                    why=f"form {shape} ({forms[shape]} of {len(pairs)}); the field's forms: {described}"))
    for split in out.suspects:
        out.suspects[split].sort(key=lambda s: (s.check, -s.score))
    return out
