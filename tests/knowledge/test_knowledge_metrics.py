"""recall@k and MRR, checked against numbers worked out by hand."""

from __future__ import annotations

import pytest

from advisor.knowledge.metrics import distinct_sources, mrr, recall_at_k

# Ranked source ids of retrieved chunks (duplicates: several chunks of one document).
RETRIEVED = [
    ["a", "a", "b", "c"],  # q1: distinct a, b, c
    ["x", "y", "x", "z", "w"],  # q2: distinct x, y, z, w
    ["p", "q"],  # q3: distinct p, q
    ["m", "n"],  # q4: no gold, left out of both averages
]
GOLD = [
    ["b"],  # q1: b is distinct rank 2 (chunk rank 3)
    ["z", "w", "v"],  # q2: z rank 3, w rank 4, v never
    ["r"],  # q3: never found
    [],
]


def test_distinct_sources_keeps_first_occurrence():
    assert distinct_sources(["x", "y", "x", "z", "y"]) == ["x", "y", "z"]


def test_recall_at_k_by_hand():
    # k=1: q1 {a}∩{b}=0 -> 0; q2 {x} -> 0/3; q3 -> 0. Mean 0.
    assert recall_at_k(RETRIEVED, GOLD, k=1) == 0.0
    # k=2: q1 {a,b} -> 1/1; q2 {x,y} -> 0/3; q3 {p,q} -> 0. Mean 1/3.
    assert recall_at_k(RETRIEVED, GOLD, k=2) == pytest.approx(1 / 3)
    # k=3: q1 1; q2 {x,y,z} -> 1/3; q3 0. Mean (1 + 1/3) / 3 = 4/9.
    assert recall_at_k(RETRIEVED, GOLD, k=3) == pytest.approx(4 / 9)
    # k=4: q1 1; q2 {x,y,z,w} -> 2/3; q3 0. Mean (1 + 2/3) / 3 = 5/9.
    assert recall_at_k(RETRIEVED, GOLD, k=4) == pytest.approx(5 / 9)
    # Without de-duplication q2's top 4 chunks would miss w: k counts documents, not chunks.
    assert recall_at_k(RETRIEVED, GOLD, k=10) == pytest.approx(5 / 9)


def test_mrr_by_hand():
    # q1: first gold b at distinct rank 2 -> 1/2; q2: z at rank 3 -> 1/3; q3: none -> 0.
    # Mean (1/2 + 1/3 + 0) / 3 = 5/18.
    assert mrr(RETRIEVED, GOLD) == pytest.approx(5 / 18)
    # Cut at k=2: q2's z (rank 3) no longer counts -> (1/2 + 0 + 0) / 3 = 1/6.
    assert mrr(RETRIEVED, GOLD, k=2) == pytest.approx(1 / 6)
    assert mrr([["g", "h"]], [["g"]]) == 1.0


def test_metrics_reject_mismatched_or_goldless_input():
    with pytest.raises(ValueError, match="one ranked list per query"):
        recall_at_k([["a"]], [["a"], ["b"]], k=1)
    with pytest.raises(ValueError, match="no query has gold"):
        mrr([["a"]], [[]])
    with pytest.raises(ValueError, match="`k` must be at least 1"):
        recall_at_k([["a"]], [["a"]], k=0)
