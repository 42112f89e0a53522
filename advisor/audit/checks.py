"""The audit's checks over train, eval, the few-shot pool and knowledge. No language model is loaded;
the embedding model only when `audit.embeddings` (or `embeddings=True`) asks for it, or when the
label-error check (`audit.label_errors`, advisor/audit/label_errors.py) has a classification task large
enough to check.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from statistics import NormalDist
from typing import Any

import numpy as np

from advisor.audit.label_errors import (
    METHOD,
    MIN_FIELD_VALUES,
    MIN_PER_LABEL,
    Suspect,
    check_fields,
    check_labels,
)
from advisor.audit.report import AuditReport, Finding, Severity
from advisor.audit.similar import cosine_pairs, near_pairs
from advisor.audit.sources import KnowledgeDoc, Record, load_documents, load_records
from advisor.errors import InputError
from advisor.scoring import contains_answer
from advisor.spec import Task
from advisor.textnorm import canonical_text

# Levers that show train examples to the model at query time (the few-shot pool).
POOL_LEVERS = ("prompt-few-shot",)


def _short(text: Any, n: int = 70) -> str:
    s = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _same(a: Any, b: Any) -> bool:
    """Whether two outputs are the same; an eval item without gold (None, allowed when the target is a
    check) is the same as any: it cannot conflict with anything."""
    if a is None or b is None:
        return True
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ({}, [])


class _Collector:
    """Builds findings; keeps at most `limit` examples each but counts all of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.findings: list[Finding] = []

    def add(self, check: str, severity: Severity, message: str,
            items: list[tuple[str, str | None, str]], count: int | None = None, every: bool = False) -> None:
        """`every`: keep every example (each one is a thing to fix), not the first `limit`."""
        if not items and not count:
            return
        examples = [{"a": a, "b": b, "text": t} for a, b, t in (items if every else items[: self.limit])]
        self.findings.append(Finding(check, severity, len(items) if count is None else count, message, examples))


def _refused(refused: list[InputError], out: _Collector) -> None:
    """Records the loaders refuse, each with the loader's own message: `advise validate` and `advise run`
    stop at the first of them; the audit lists them all."""
    items = [(f"{e.file}:{e.line}" if e.line else str(e.file), None,
              f"{e.field}: {e.message}" if e.field else e.message) for e in refused]
    out.add("refused", "error", "records `advise validate` and `advise run` refuse, each with the loader's "
            "message; the other checks leave them out", items, every=True)


def _form_checks(task: Task, train: list[Record], eval_: list[Record], out: _Collector) -> None:
    """What the loader accepts but a run would not want: outputs with nothing in them, and train
    extraction keys the eval set never asks for."""
    # An eval item without gold (None) is one the loader let through on purpose (a check is the target).
    empty = [(r.where, None, f"{r.split} item {r.id}: output {_short(r.output)!s}") for r in train + eval_
             if _is_empty(r.output) and not (r.split == "eval" and r.output is None)]
    out.add("empty-output", "warning", "items with an empty output (no gold answer)", empty)
    gold_eval = [r for r in eval_ if r.output is not None]
    if task.kind == "extraction" and gold_eval:  # no eval gold: no eval fields to compare train's keys with
        eval_keys = {k for r in gold_eval for k in r.output}
        odd = [(r.where, None, f"keys {', '.join(sorted(set(r.output) - eval_keys))} are not in any eval output")
               for r in train if set(r.output) - eval_keys]
        out.add("unknown-keys", "warning", f"train outputs with keys outside the eval set's fields "
                f"({', '.join(sorted(eval_keys))})", odd)


def _groups(records: Iterable[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.key:
            groups[r.key].append(r)
    return groups


def _exact_checks(train: list[Record], eval_: list[Record], docs: list[KnowledgeDoc], out: _Collector,
                  conflicts: list[tuple[str, Record, Record, str]]) -> list[str]:
    """Exact duplicates (the leakage guard's normalisation) and exact-input label conflicts.
    Returns the train ids whose input is an eval input (removed from train, as always)."""
    for split, records in (("train", train), ("eval", eval_)):
        items = []
        for group in _groups(records).values():
            for r in group[1:]:
                items.append((group[0].where, r.where, _short(r.input)))
                if not _same(group[0].output, r.output):
                    conflicts.append((split, group[0], r, "same input"))
        out.add(f"exact-duplicate:{split}", "warning", f"{split} items whose input repeats an earlier {split} "
                "input (as the leakage guard compares them: case, spacing and Unicode forms folded)", items)
    eval_groups = _groups(eval_)
    leaks = []
    for r in train:
        hit = eval_groups.get(r.key)
        if hit and r.key:
            leaks.append((r.where, hit[0].where, _short(r.input), r.id))
            if not _same(hit[0].output, r.output):
                conflicts.append(("train/eval", r, hit[0], "same input"))
    out.add("exact-duplicate:train/eval", "removed", "train items whose input is an eval input: removed from "
            "train, the few-shot pool and retrieval (eval never leaks)", [x[:3] for x in leaks])
    doc_keys = {canonical_text(d.text): d for d in docs if d.text.strip()}
    for split, records in (("train", train), ("eval", eval_)):
        items = [(doc_keys[r.key].where, r.where, _short(r.input)) for r in records if r.key in doc_keys]
        out.add(f"exact-duplicate:knowledge/{split}", "warning",
                f"knowledge documents that are word for word a {split} input", items)
    return [x[3] for x in leaks]


def _id_checks(train: list[Record], eval_: list[Record], out: _Collector) -> None:
    """Ids that name an item in train and another in eval: usually an eval item copied into train.
    Reported whatever the inputs say: an edited copy escapes the input checks above."""
    in_train = {r.id: r for r in train}
    items = [(in_train[r.id].where, r.where, f"id {r.id}" + ("" if in_train[r.id].key == r.key else
             ": the inputs differ")) for r in eval_ if r.id in in_train]
    out.add("shared-id:train/eval", "warning", "ids used in both train and eval: usually an eval item copied "
            "into train (ids name items, so one id should be one item)", items, every=True)


class _Clusters:
    """Union-find over item indices: a chain of near-copies counts as one group."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def root(self, i: int) -> int:
        self.parent.setdefault(i, i)
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        self.parent[self.root(j)] = self.root(i)

    def extra_members(self) -> int:
        return len(self.parent) - len({self.root(i) for i in self.parent})


def _near_checks(task: Task, train: list[Record], eval_: list[Record], docs: list[KnowledgeDoc],
                 exact_leaks: set[str], out: _Collector, conflicts: list[tuple[str, Record, Record, str]],
                 embed: Callable[[list[str]], Any] | None) -> list[str]:
    """Near-duplicates by MinHash LSH (and embedding cosine when `embed` is given) across every pair of
    train, eval and knowledge. Returns the train ids that nearly copy an eval input."""
    cfg = task.audit
    items: list[tuple[str, Record | KnowledgeDoc]] = [(r.split, r) for r in train + eval_ if r.key]
    items += [("knowledge", d) for d in docs if d.text.strip()]
    texts = [x.input if isinstance(x, Record) else x.text for _, x in items]  # type: ignore[misc]
    pairs = {(i, j): f"jaccard {s:.2f}" for i, j, s in near_pairs(texts, cfg.jaccard, shingle_words=cfg.shingle_words,
                                                                   num_perm=cfg.num_perm, seed=task.seed + 1)}
    if embed is not None:
        for i, j, s in cosine_pairs(embed(texts), cfg.cosine):
            pairs.setdefault((i, j), f"cosine {s:.2f}")
    by_kind: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for (i, j), how in sorted(pairs.items()):
        (si, a), (sj, b) = items[i], items[j]
        key_a = a.key if isinstance(a, Record) else canonical_text(a.text)
        key_b = b.key if isinstance(b, Record) else canonical_text(b.text)
        if key_a == key_b:
            continue  # an exact duplicate, reported above
        # items run train, eval, knowledge and i < j, so kinds read "train/eval", "eval/knowledge", ...
        by_kind[f"{si}/{sj}" if si != sj else si].append((i, j, how))

    def text_of(k: int) -> str:
        x = items[k][1]
        return _short(x.input if isinstance(x, Record) else x.text, 50)

    def rows(kind: str) -> list[tuple[str, str | None, str]]:
        return [(items[i][1].where, items[j][1].where, f"{text_of(i)!r} ~ {text_of(j)!r} ({how})")
                for i, j, how in by_kind.get(kind, [])]

    for split in ("train", "eval"):
        clusters = _Clusters()
        for i, j, _ in by_kind.get(split, []):
            clusters.join(i, j)
        out.add(f"near-duplicate:{split}", "warning", f"{split} items that nearly repeat another {split} item "
                "(one group of near-copies counts its members after the first)", rows(split),
                count=clusters.extra_members())
    leak_rows = [(i, j, how) for i, j, how in by_kind.get("train/eval", [])
                 if items[i][1].id not in exact_leaks]  # type: ignore[union-attr]
    near_ids = list(dict.fromkeys(items[i][1].id for i, _, _ in leak_rows))  # type: ignore[union-attr]
    removing = cfg.near_duplicates == "remove"
    by_kind["train/eval"] = leak_rows
    out.add("near-duplicate:train/eval", "removed" if removing else "warning",
            "train items that nearly copy an eval input" + (
                ": removed from train, the few-shot pool and retrieval (audit.near_duplicates: remove)" if removing
                else "; they inflate scores of levers that learn from or show train "
                "(set audit.near_duplicates: remove to drop them)"), rows("train/eval"), count=len(near_ids))
    if not removing and near_ids and any(lv in POOL_LEVERS for lv in task.levers):
        out.add("near-duplicate:few-shot-pool/eval", "warning", "the few-shot pool (train after exact leakage "
                "is removed) holds near-copies of eval inputs, shown to the model as solved examples",
                rows("train/eval"), count=len(near_ids))
    for kind in ("train/knowledge", "eval/knowledge"):
        split = kind.split("/")[0]
        out.add(f"near-duplicate:knowledge/{split}", "warning", f"knowledge documents that nearly repeat a {split} "
                "input", rows(kind), count=len({j for _, j, _ in by_kind.get(kind, [])}))
    docs_clusters = _Clusters()
    for i, j, _ in by_kind.get("knowledge", []):
        docs_clusters.join(i, j)
    out.add("knowledge-near-duplicate", "warning", "knowledge documents that nearly repeat another document",
            rows("knowledge"), count=docs_clusters.extra_members())
    if task.kind == "classification":  # elsewhere a changed word rightly changes the answer ("AD" vs "AO")
        for kind in ("train", "train/eval"):
            for i, j, how in by_kind.get(kind, []):
                a, b = items[i][1], items[j][1]
                if isinstance(a, Record) and isinstance(b, Record) and not _same(a.output, b.output):
                    conflicts.append((kind, a, b, how))
    return near_ids


def _conflict_findings(conflicts: list[tuple[str, Record, Record, str]], out: _Collector) -> None:
    for kind in ("train", "train/eval"):
        rows = [(a.where, b.where, f"{_short(a.input, 50)!r} → {_short(a.output, 30)} but "
                 f"{_short(b.input, 50)!r} → {_short(b.output, 30)} ({how})")
                for k, a, b, how in conflicts if k == kind]
        out.add(f"label-conflict:{kind}", "warning",
                f"identical or near-identical inputs with different outputs ({'within train' if kind == 'train' else 'train against eval'}); "
                "every lever is capped by them", rows)


def items_for_label_recall(half_width: float, confidence: float) -> int:
    """Eval items one label needs for its recall's interval to be at most ± `half_width`:
    n = z² · p(1−p) / h² at the worst case p = 0.5 (normal approximation), z for `confidence`."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    return math.ceil(z * z * 0.25 / (half_width * half_width))


def _balance_checks(task: Task, train: list[Record], eval_: list[Record], out: _Collector) -> dict[str, Any]:
    labels = task.labels or []
    counts = {split: Counter(str(r.output) for r in records if r.output is not None and str(r.output) in labels)
              for split, records in (("train", train), ("eval", eval_))}
    per = {split: {lb: c[lb] for lb in labels} for split, c in counts.items()}
    # Eval without gold (the target is a check): no labels to count, no per-label recall to size.
    eval_gold = any(r.output is not None for r in eval_)
    summary = "; ".join(f"{split}: " + (", ".join(f"{lb} {n}" for lb, n in per[split].items())
                                       if split == "train" or eval_gold else "no gold outputs (the target is a check)")
                        for split in per)
    ratio = max(per["train"].values()) / max(min(per["train"].values()), 1)
    out.add("balance", "info", f"class balance — {summary} (largest/smallest train class {ratio:.1f}×)", [],
            count=len(labels))
    conf, h = task.target.confidence, task.audit.label_half_width
    need = items_for_label_recall(h, conf)
    z = NormalDist().inv_cdf(1 - (1 - conf) / 2)
    eval_file = str(task.path(task.data.eval))
    first = {lb: next((r.where for r in eval_ if str(r.output) == lb), eval_file) for lb in labels}
    few = [(first[lb], None, f"{lb}: {n} eval item(s), recall ± {z * math.sqrt(0.25 / n):.2f}" if n else
            f"{lb}: no eval items") for lb, n in per["eval"].items() if n < need and eval_gold]
    out.add("too-few-eval-items", "warning", f"labels with too few eval items to say anything: each needs {need} "
            f"for its recall's {round(conf * 100)}% interval to be within ±{h:.2f} (n = z²·0.25/h², normal "
            "approximation at p = 0.5; audit.label_half_width)", few)
    unseen = [(first[lb], None, f"{lb}: {per['eval'][lb]} eval item(s), 0 train")
              for lb in labels if per["train"][lb] == 0]
    out.add("label-unseen-in-train", "warning", "labels never seen in train (few-shot and fine-tuning cannot "
            "learn them)", unseen)
    return per


def _knowledge_checks(task: Task, eval_: list[Record], docs: list[KnowledgeDoc], out: _Collector) -> None:
    out.add("knowledge-empty", "warning", "knowledge files with no text (nothing to retrieve; RAG skips them)",
            [(d.where, None, f"document {d.id} is empty") for d in docs if not d.text.strip()])
    seen: dict[str, KnowledgeDoc] = {}
    ids = {d.id: d for d in docs}  # unique: the loader refuses a repeated id
    dupes = []
    for d in docs:
        key = canonical_text(d.text)
        if key and key in seen:
            dupes.append((seen[key].where, d.where, f"{seen[key].id} = {d.id}: {_short(d.text, 50)!r}"))
        seen.setdefault(key, d)
    out.add("knowledge-duplicate", "warning", "knowledge documents whose text repeats another document", dupes)
    if task.kind not in ("qa", "generation"):
        return
    missing, absent = [], []
    for r in eval_:
        sources = r.fields.get("sources")
        if not isinstance(sources, list) or not sources or _is_empty(r.output):
            continue
        cited = [ids[str(s)] for s in sources if str(s) in ids]
        missing += [(r.where, None, f"cites '{s}', which is not in the knowledge") for s in sources
                    if str(s) not in ids]
        if cited and not any(contains_answer(d.text, str(r.output)) for d in cited):
            absent.append((r.where, cited[0].where, f"answer {_short(r.output, 30)!r} is in none of "
                           f"{', '.join(d.id for d in cited)}"))
    out.add("source-missing", "warning", "eval items citing a document the knowledge does not hold", missing)
    out.add("answer-not-in-sources", "warning", "eval items whose gold answer appears in none of the documents "
            "they cite (answer normalisation, whole tokens): retrieval cannot supply it", absent)


class _Embeddings:
    """The audit's embedding function: loads the model on first use and embeds each distinct text once
    (the near-duplicate and the label-error checks share the vectors)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._encode: Callable[[list[str]], Any] | None = None
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self._encode is None:
            from advisor.knowledge.embeddings import Embedder

            self._encode = Embedder(self.model).encode
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            self._cache.update(zip(todo, self._encode(todo)))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


# Suspects shown in a label-error finding: more than other findings' examples, since each is a thing to review.
SUSPECTS_SHOWN = 10


def _suspect_rows(suspects: list[Suspect], shown: int) -> list[dict[str, Any]]:
    rows = []
    for s in suspects[:shown]:
        if s.check == "label-error":
            text = f"{s.id}: {_short(s.input, 60)!r} labelled {s.given}; the data suggests {s.suggested}"
        else:
            text = f"{s.id}: {s.field} = {_short(s.given, 40)!r} in {_short(s.input, 50)!r} ({s.why})"
        rows.append({"a": s.where, "b": None, "text": f"{text} (score {s.score:.2f})", **s.as_dict()})
    return rows


def _label_error_checks(task: Task, train: list[Record], eval_: list[Record], out: _Collector,
                        embed: Callable[[list[str]], Any]) -> tuple[list[Suspect], dict[str, Any]]:
    """Likely label errors (classification) and field errors (extraction), train and eval apart; a check
    that cannot run on this data says why in an info finding (never an empty result without a reason)."""
    shown = max(out.limit, SUSPECTS_SHOWN)
    if task.kind == "classification":
        result = check_labels(task.labels or [], train, eval_, embed, seed=task.seed)
        left = (f"; not checked: {', '.join(f'{lb} ({n} train)' for lb, n in result.left_out.items())} "
                f"(a label needs {MIN_PER_LABEL} train examples)") if result.left_out else ""
        counts: dict[str, Any] = {"method": METHOD, "skipped": result.skipped, "left_out": result.left_out,
                                  "checked": result.checked, "chosen_c": result.chosen_c,
                                  "oof_accuracy": result.oof_accuracy, "seconds": result.seconds}
        if result.skipped:
            out.findings.append(Finding("label-error", "info", 0, f"likely label errors: not checked: "
                                        f"{result.skipped}"))
            return [], counts
        for split in ("train", "eval"):
            found, n = result.suspects[split], result.checked[split]
            counts[split] = {"flagged": len(found), "by_given": dict(Counter(s.given for s in found)),
                             "by_suggested": dict(Counter(s.suggested for s in found))}
            if not n:
                continue
            first = "; an eval label error corrupts the verdict itself: review these first" if split == "eval" else ""
            if found:
                out.findings.append(Finding(
                    f"label-error:{split}", "warning", len(found),
                    f"{split} items whose label is likely wrong, of {n} checked{first}; likeliest first, with the "
                    "label the data suggests and a score (1 − the out-of-fold probability of the given label); "
                    f"`advise audit --review FILE.csv` writes them all. Method: {METHOD}{left}",
                    _suspect_rows(found, shown)))
            else:
                out.findings.append(Finding(f"label-error:{split}", "info", 0, f"no likely label errors among "
                                            f"{n} {split} items ({METHOD}){left}"))
        return result.suspects["eval"] + result.suspects["train"], counts
    if task.kind == "extraction":
        result = check_fields(train, eval_)
        counts = {"fields": result.fields, "copying": result.copying, "patterns": result.patterns}
        if not result.copying and not result.patterns:
            few = [k for k, n in result.fields.items() if n < MIN_FIELD_VALUES]
            why = (f"fields with fewer than {MIN_FIELD_VALUES} values cannot show a rule: {', '.join(few)}; "
                   if few else "")
            out.findings.append(Finding("field-error", "info", 0, "gold field values: not checked: " + why +
                                        "no field copies text from its input (90% of values found in it) or "
                                        "keeps to 3 or fewer forms (95% of values)"))
        for split in ("train", "eval"):
            found = result.suspects[split]
            counts[split] = {"not_in_input": sum(s.check == "field-not-in-input" for s in found),
                             "pattern": sum(s.check == "field-pattern" for s in found)}
            missing = [s for s in found if s.check == "field-not-in-input"]
            if missing:
                out.findings.append(Finding(
                    f"field-not-in-input:{split}", "warning", len(missing),
                    f"{split} gold values that do not occur in their input, in fields that copy text "
                    f"({', '.join(f'{k}: {v:.0%} found' for k, v in result.copying.items())}; words compared, "
                    "punctuation and case ignored): the counterpart of a wrong label", _suspect_rows(missing, shown)))
            odd = [s for s in found if s.check == "field-pattern"]
            if odd:
                out.findings.append(Finding(
                    f"field-pattern:{split}", "warning", len(odd),
                    f"{split} gold values whose form breaks their field's pattern (fields: "
                    f"{', '.join(result.patterns)}; form = character classes with run lengths, e.g. 9{{5}} "
                    "for five digits)", _suspect_rows(odd, shown)))
        return [s for split in ("eval", "train") for s in result.suspects[split]], counts
    return [], {}


def audit_task(task: Task, *, embeddings: bool | None = None, label_errors: bool | None = None) -> AuditReport:
    """Audit the task's train, eval and knowledge. `embeddings` overrides `audit.embeddings`,
    `label_errors` overrides `audit.label_errors` (likely wrong gold answers: `AuditReport.suspects`;
    with neither set, they are looked for: the run passes its own choice, see `advisor.plan.load_data`).

    Raises InputError (exit 2) for a missing file or a line that is not JSON; every other problem is
    a finding, records the loaders refuse too (severity "error", `AuditReport.refused`), with the
    loaders' own messages. No language model is loaded; the embedding model only when asked for or
    when the label-error check has a classification task large enough to check.
    """
    cfg = task.audit
    train, refused = load_records(task, "train")
    eval_, refused_eval = load_records(task, "eval")
    docs, refused_docs = load_documents(task)
    refused += refused_eval + refused_docs
    out = _Collector(cfg.examples)
    conflicts: list[tuple[str, Record, Record, str]] = []
    _refused(refused, out)
    _form_checks(task, train, eval_, out)
    exact = _exact_checks(train, eval_, docs, out, conflicts)
    _id_checks(train, eval_, out)
    shared = _Embeddings(cfg.embedding)
    embed = shared if (cfg.embeddings if embeddings is None else embeddings) else None
    near = _near_checks(task, train, eval_, docs, set(exact), out, conflicts, embed)
    _conflict_findings(conflicts, out)
    counts: dict[str, Any] = {"train": len(train), "eval": len(eval_), "knowledge": len(docs), "refused": len(refused)}
    if task.kind == "classification":
        counts["labels"] = _balance_checks(task, train, eval_, out)
    suspects: list[Suspect] = []
    if label_errors if label_errors is not None else cfg.label_errors is not False:
        suspects, counts["label_errors"] = _label_error_checks(task, train, eval_, out, shared)
    _knowledge_checks(task, eval_, docs, out)
    counts["warnings"] = sum(f.count for f in out.findings if f.severity == "warning")
    counts["removed_exact"] = len(exact)
    counts["removed_near"] = len(near) if cfg.near_duplicates == "remove" else 0
    counts["near_method"] = f"minhash-lsh jaccard>={cfg.jaccard} on {cfg.shingle_words}-word shingles" + (
        f" + embedding cosine>={cfg.cosine}" if embed is not None else "")
    return AuditReport(out.findings, counts, cfg.strict, exact, near, refused, suspects)
