"""Retrieval quality against gold sources: recall@k and MRR, by document.

Retrieval returns chunks, several of which can come from one document; both
metrics first reduce each ranked list to its distinct source ids, keeping the
first (best) occurrence, so a document counts once at its best rank.
Queries without gold sources are left out of the average.
"""

from __future__ import annotations

from collections.abc import Sequence


def distinct_sources(source_ids: Sequence[str]) -> list[str]:
    """Source ids in rank order, each kept at its first occurrence.

    >>> distinct_sources(["a", "b", "a", "c"])
    ['a', 'b', 'c']
    """
    return list(dict.fromkeys(source_ids))


def recall_at_k(
    retrieved_source_ids: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], k: int
) -> float:
    """Mean over queries with gold of |gold ∩ top-k distinct sources| / |gold|.

    Top-k means the first k *distinct* source ids of the ranked list.

    >>> recall_at_k([["a", "a", "b"], ["c"]], [["b"], ["d", "c"]], k=2)
    0.75
    """
    if k < 1:
        raise ValueError(f"`k` must be at least 1, got {k}.")
    total, n = 0.0, 0
    for ranked, wanted in _pairs(retrieved_source_ids, gold):
        top = set(distinct_sources(ranked)[:k])
        total += len(wanted & top) / len(wanted)
        n += 1
    return total / n


def mrr(
    retrieved_source_ids: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    k: int | None = None,
) -> float:
    """Mean over queries with gold of 1 / rank of the first gold source (0 if none).

    Ranks count distinct sources from 1; with `k`, only the first k count.

    >>> mrr([["x", "x", "a"], ["c", "d"], ["e"]], [["a"], ["d", "c"], ["z"]])
    0.5
    """
    if k is not None and k < 1:
        raise ValueError(f"`k` must be at least 1, got {k}.")
    total, n = 0.0, 0
    for ranked, wanted in _pairs(retrieved_source_ids, gold):
        ranks = distinct_sources(ranked)[:k]
        total += next((1.0 / r for r, s in enumerate(ranks, start=1) if s in wanted), 0.0)
        n += 1
    return total / n


def _pairs(
    retrieved: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]
) -> list[tuple[Sequence[str], set[str]]]:
    if len(retrieved) != len(gold):
        raise ValueError(
            f"one ranked list per query: got {len(retrieved)} ranked lists for {len(gold)} queries"
        )
    pairs = [(r, set(g)) for r, g in zip(retrieved, gold, strict=True) if g]
    if not pairs:
        raise ValueError("no query has gold sources; recall and MRR are undefined")
    return pairs
