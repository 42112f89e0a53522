"""Near-duplicate search at scale: MinHash LSH (the audit's `near_pairs`) against exact all-pairs Jaccard.

Synthetic short texts (14–20 words from a 20,000-word vocabulary) with planted near-copies (one word
changed or added, case and spacing altered). Prints, for 5k / 20k / 50k texts: LSH time, recall of
the planted pairs, and the measured time exponent; the all-pairs reference is timed on a 5,000-text
subset and scaled by n² (running it on 50k would take hours). Ratios, not wall-clock assertions.

    .venv/bin/python bench/bench_audit.py [--sizes 5000,20000,50000] [--threshold 0.7]
"""

from __future__ import annotations

import argparse
import math
import random
import time

from advisor.audit.similar import all_pairs_jaccard, jaccard, near_pairs, shingles
from advisor.spec import AuditSpec


def synthetic(n: int, copies: float = 0.05, seed: int = 0) -> tuple[list[str], set[tuple[int, int]]]:
    """`n` texts; a `copies` share of them near-copies of an earlier one. Returns texts and planted pairs."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    n_copies = int(n * copies)
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(14, 20))) for _ in range(n - n_copies)]
    planted = set()
    for _ in range(n_copies):
        src = rng.randrange(len(texts))
        words = texts[src].split()
        if rng.random() < 0.7:  # one word changed
            words[rng.randrange(len(words))] = rng.choice(vocab)
        else:  # one word added
            words.insert(rng.randrange(len(words) + 1), rng.choice(vocab))
        copy = ("  ".join(words)).upper() if rng.random() < 0.5 else " ".join(words) + " ?"
        planted.add((src, len(texts)))
        texts.append(copy)
    return texts, planted


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5000,20000,50000")
    ap.add_argument("--threshold", type=float, default=AuditSpec().jaccard)
    ap.add_argument("--reference", type=int, default=5000, help="texts for the all-pairs reference")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]

    texts, _ = synthetic(args.reference, seed=1)
    t0 = time.perf_counter()
    reference = all_pairs_jaccard(texts, args.threshold)
    ref_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lsh_ref = near_pairs(texts, args.threshold)
    lsh_ref_s = time.perf_counter() - t0
    exact = {(i, j) for i, j, _ in reference}
    got = {(i, j) for i, j, _ in lsh_ref}
    print(f"reference: all-pairs exact Jaccard on {args.reference:,} texts: {ref_s:.1f} s, {len(exact)} pairs "
          f">= {args.threshold}; LSH {lsh_ref_s:.2f} s, finds {len(got & exact)}/{len(exact)} of them "
          f"(recall {len(got & exact) / max(len(exact), 1):.3f}), {len(got - exact)} not in the reference")

    timings = []
    print(f"{'texts':>7} {'planted':>8} {'lsh s':>8} {'recall':>7} {'all-pairs s (n² scaled)':>24} {'speed-up':>9}")
    for n in sizes:
        texts, planted = synthetic(n, seed=2)
        t0 = time.perf_counter()
        pairs = near_pairs(texts, args.threshold)
        seconds = time.perf_counter() - t0
        found = {(i, j) for i, j, _ in pairs}
        # Recall over the planted pairs whose true Jaccard reaches the threshold (one changed word in
        # a 14-word text falls just below 0.85; those are not near-duplicates by the definition used).
        due = {p for p in planted if jaccard(shingles(texts[p[0]]), shingles(texts[p[1]])) >= args.threshold}
        recall = len(found & due) / max(len(due), 1)
        scaled = ref_s * (n / args.reference) ** 2
        timings.append((n, seconds))
        print(f"{n:>7,} {len(due):>8,} {seconds:>8.2f} {recall:>7.3f} {scaled:>24.1f} {scaled / seconds:>8.0f}×")
    if len(timings) >= 2:
        (n0, s0), (n1, s1) = timings[0], timings[-1]
        exponent = math.log(s1 / s0) / math.log(n1 / n0)
        print(f"measured time exponent {n0:,} → {n1:,}: {exponent:.2f} (1 = linear, 2 = all pairs)")


if __name__ == "__main__":
    main()
