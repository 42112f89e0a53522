"""Near-duplicate search: MinHash + LSH on word shingles (datasketch), and embedding cosine.

MinHash LSH (datasketch) finds candidate pairs in near-linear time: each text is hashed into
bands, and only texts sharing a band bucket are compared. Every candidate is then checked with
its exact Jaccard similarity, so a reported pair is never an LSH false positive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH

from advisor.textnorm import canonical_text

_WORD = re.compile(r"\w+")


def shingles(text: str, words: int = 1) -> set[bytes]:
    """The set of `words`-word shingles of `text` in the leakage guard's form (`canonical_text`;
    punctuation then dropped). A text shorter than `words` is one shingle; an empty text none."""
    tokens = _WORD.findall(canonical_text(text))
    if len(tokens) <= words:
        return {" ".join(tokens).encode()} if tokens else set()
    return {" ".join(tokens[i : i + words]).encode() for i in range(len(tokens) - words + 1)}


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def band_layout(threshold: float, num_perm: int, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows) for LSH: the most rows per band (fewest false candidates) such that a pair whose
    Jaccard is exactly `threshold` becomes a candidate with probability >= `recall`, 1 - (1 - t^r)^b.

    datasketch's own optimiser balances misses against false candidates (a pair at the threshold is
    found about 70% of the time at 0.85); an audit would rather check more candidates than miss a leak,
    and the exact Jaccard check removes every false candidate.
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def near_pairs(
    texts: Sequence[str],
    threshold: float,
    *,
    shingle_words: int = 1,
    num_perm: int = 128,
    seed: int = 1,
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, jaccard) with i < j whose shingle sets have Jaccard >= `threshold`.

    Candidates come from MinHash LSH (no all-pairs comparison: time grows about linearly with
    len(texts) when few texts are similar); each is confirmed with the exact Jaccard.
    Raises ValueError for a threshold outside (0, 1].
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"`threshold` should lie in (0, 1], got {threshold}.")
    sets = [shingles(t, shingle_words) for t in texts]
    hashes = MinHash.bulk([sorted(s) for s in sets], num_perm=num_perm, seed=seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=band_layout(threshold, num_perm))
    with lsh.insertion_session() as session:
        for i, (s, m) in enumerate(zip(sets, hashes)):
            if s:
                session.insert(i, m, check_duplication=False)
    pairs = []
    for i, (s, m) in enumerate(zip(sets, hashes)):
        if not s:
            continue
        for j in lsh.query(m):
            if j > i:
                sim = jaccard(s, sets[j])
                if sim >= threshold:
                    pairs.append((i, j, sim))
    return pairs


def all_pairs_jaccard(texts: Sequence[str], threshold: float, *, shingle_words: int = 1) -> list[tuple[int, int, float]]:
    """The reference the benchmark measures LSH against: every pair's exact Jaccard (O(n^2))."""
    sets = [shingles(t, shingle_words) for t in texts]
    out = []
    for i in range(len(sets)):
        a = sets[i]
        for j in range(i + 1, len(sets)):
            sim = jaccard(a, sets[j])
            if sim >= threshold:
                out.append((i, j, sim))
    return out


def cosine_pairs(vectors: np.ndarray, threshold: float, *, block: int = 1024) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) with i < j and cosine >= `threshold`, for (n, d) unit vectors.

    Blocked dot products: n^2 work, but in BLAS; the audit only asks for it on request
    (`audit.embeddings`), and at 10,000 texts it is 10^8 products of 384-d vectors, seconds.
    """
    n = len(vectors)
    out: list[tuple[int, int, float]] = []
    for start in range(0, n, block):
        sims = vectors[start : start + block] @ vectors.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            i = start + r
            if c > i:
                out.append((i, c, float(sims[r, c])))
    return out
