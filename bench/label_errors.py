"""Label-error detection on TREC train with planted errors: how many it finds, and what it costs.

4% of TREC train's labels (sample_tasks/trec/data/train.jsonl, 5,080 questions) are flipped to another
label at random, per seed. For each seed it prints precision among the top-k suspects (k = number planted),
and the flagged set's size, recall and precision, for the audit's method (embedding + word TF-IDF views,
cleanlab prune_by_class) and the alternatives measured on the way to it: the embedding alone (the issue's
floor), the TF-IDF alone, and other cleanlab `filter_by` rules. Then the time: the audit's label-error
check (features, cross-validation with its C grid, cleanlab) as a ratio against embedding the same texts
with all-MiniLM-L6-v2, both measured in this run, and a whole `advise audit` of the real task against its
own embedding time. Ratios, not wall-clock assertions (the machine may be busy).

    .venv/bin/python bench/label_errors.py [--seeds 1,2,3] [--sizes 250,500,1000,2500]

The precision of natural (not planted) errors is not measured here: the planted flips are the only
errors whose truth is known; a suspect that was not planted may still be a real error of TREC's own.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from advisor.audit.label_errors import find_label_errors
from advisor.knowledge.embeddings import Embedder

ROOT = Path(__file__).resolve().parent.parent
TREC = ROOT / "sample_tasks" / "trec"


def plant(labels: list[str], share: float, seed: int) -> tuple[list[str], set[int]]:
    """`labels` with round(share·n) of them, chosen at random, changed to another label at random."""
    rng = random.Random(seed)
    classes = sorted(set(labels))
    idx = set(rng.sample(range(len(labels)), round(share * len(labels))))
    noisy = list(labels)
    for i in idx:
        noisy[i] = rng.choice([c for c in classes if c != labels[i]])
    return noisy, idx


def measure(vectors: np.ndarray, texts: list[str], noisy: list[str], planted: set[int], **kw) -> dict[str, float]:
    classes = sorted(set(noisy))
    t0 = time.perf_counter()
    flagged, score, _, info = find_label_errors(vectors, texts, noisy, classes, **kw)
    seconds = time.perf_counter() - t0
    k = len(planted)
    top = set(np.argsort(-score, kind="stable")[:k].tolist())
    hit = set(np.nonzero(flagged)[0].tolist())
    return {"p_at_k": len(top & planted) / k, "flagged": len(hit), "recall": len(hit & planted) / k,
            "precision": len(hit & planted) / max(len(hit), 1), "seconds": seconds, "oof_acc": info["oof_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--share", type=float, default=0.04)
    ap.add_argument("--sizes", default="250,500,1000,2500", help="subsample sizes for the data-size curve")
    ap.add_argument("--no-audit", action="store_true", help="skip timing a whole `advise audit`")
    args = ap.parse_args()
    rows = [json.loads(line) for line in (TREC / "data" / "train.jsonl").read_text().splitlines()]
    texts, labels = [r["input"] for r in rows], [r["output"] for r in rows]

    embedder = Embedder()
    t0 = time.perf_counter()
    embedder.encode(["warm up"])  # loading the model is not embedding
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - t0
    print(f"TREC train: {len(texts):,} questions; model load {load_s:.1f} s; embedding {embed_s:.1f} s "
          f"({len(texts) / embed_s:.0f} texts/s)")

    variants = {
        "audit: embedding+tfidf, prune_by_class": {},
        "embedding only, prune_by_noise_rate (floor)": {"views": ("embedding",), "filter_by": "prune_by_noise_rate"},
        "embedding only, prune_by_class": {"views": ("embedding",)},
        "tfidf only, prune_by_class": {"views": ("tfidf",)},
        "embedding+tfidf, prune_by_noise_rate": {"filter_by": "prune_by_noise_rate"},
        "embedding+tfidf, both": {"filter_by": "both"},
        "embedding+tfidf, low_self_confidence": {"filter_by": "low_self_confidence"},
    }
    print(f"\n{'method':46s} {'seed':>4} {'oof acc':>7} {'p@k':>6} {'flagged':>7} {'recall':>6} {'prec':>6} "
          f"{'check s':>7} {'/embed':>7}")
    fit_ratio = []
    for name, kw in variants.items():
        for seed in [int(s) for s in args.seeds.split(",")]:
            noisy, planted = plant(labels, args.share, seed)
            m = measure(vectors, texts, noisy, planted, **kw)
            if not kw:
                fit_ratio.append(m["seconds"] / embed_s)
            print(f"{name:46s} {seed:>4} {m['oof_acc']:7.3f} {m['p_at_k']:6.3f} {m['flagged']:7d} "
                  f"{m['recall']:6.3f} {m['precision']:6.3f} {m['seconds']:7.1f} {m['seconds'] / embed_s:7.2f}")
    print(f"\nthe audit's check (features, 5-fold CV over a 3-value C grid per view, cleanlab) takes "
          f"{min(fit_ratio):.2f}–{max(fit_ratio):.2f}× the time of embedding the same {len(texts):,} texts")

    print(f"\ndata-size curve (audit method, seed 1, {args.share:.0%} flipped in a random subsample):")
    print(f"{'n':>6} {'planted':>7} {'p@k':>6} {'flagged':>7} {'recall':>6} {'prec':>6}")
    rng = random.Random(0)
    for n in [int(x) for x in args.sizes.split(",")] + [len(texts)]:
        pick = sorted(rng.sample(range(len(texts)), n)) if n < len(texts) else list(range(len(texts)))
        sub_labels = [labels[i] for i in pick]
        noisy, planted = plant(sub_labels, args.share, 1)
        m = measure(vectors[pick], [texts[i] for i in pick], noisy, planted)
        print(f"{n:>6} {len(planted):>7} {m['p_at_k']:6.3f} {m['flagged']:7d} {m['recall']:6.3f} {m['precision']:6.3f}")

    if not args.no_audit:
        from advisor.audit import audit_task
        from advisor.spec import load_task

        t0 = time.perf_counter()
        report = audit_task(load_task(TREC / "task.yaml"))
        total = time.perf_counter() - t0
        sec = report.counts["label_errors"]["seconds"]
        print(f"\nwhole `advise audit` of the real TREC task ({report.counts['train']:,} train + "
              f"{report.counts['eval']} eval): {total:.1f} s, of which embedding {sec['embed']:.1f} s and the "
              f"label-error check {sec['fit']:.1f} s: the audit takes {total / sec['embed']:.2f}× its embedding "
              f"time; {report.counts['label_errors']['train']['flagged']} train and "
              f"{report.counts['label_errors']['eval']['flagged']} eval suspects")


if __name__ == "__main__":
    main()
