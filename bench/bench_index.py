"""Knowledge index: build throughput against raw encoding, query latency and recall against exact search.

    python bench/bench_index.py [--source countries|synthetic] [--paragraphs 400] [--rounds 3]

Prints ratios against references measured in this same process (never absolute goals):
  KnowledgeIndex.sync / raw SentenceTransformer.encode, chunks per second   goal >= 0.85
    (median over paired rounds; the rates shown are each side's best round)
  Chroma query latency p50/p95 / brute-force numpy cosine over the same vectors
  recall@10 of Chroma's top 10 against the exact top 10                      goal >= 0.99
The default knowledge is the countries sample task (v1 and v2 documents, about 500), with its
eval questions as queries; `--source synthetic` generates paragraphs deterministically instead.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from advisor.knowledge import (
    ChunkingConfig,
    Document,
    Embedder,
    KnowledgeIndex,
    chunk_documents,
    load_knowledge,
    mrr,
    recall_at_k,
)

COUNTRIES = Path(__file__).resolve().parent.parent / "sample_tasks" / "countries" / "data"
K = 10


def countries() -> tuple[list[Document], list[str], list[list[str]]]:
    """Both knowledge versions (v2 ids suffixed) and every eval question with its gold sources."""
    docs = load_knowledge(COUNTRIES / "knowledge.jsonl")
    docs += [
        Document(f"{d.id}@v2", d.text, d.metadata) for d in load_knowledge(COUNTRIES / "knowledge_v2.jsonl")
    ]
    queries, gold = [], []
    for name, suffix in (("eval.jsonl", ""), ("eval_v2.jsonl", "@v2")):
        for line in (COUNTRIES / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            queries.append(row["input"])
            gold.append([s + suffix for s in row.get("sources", [])])
    return docs, queries, gold


def synthetic(paragraphs: int) -> tuple[list[Document], list[str], list[list[str]]]:
    """Deterministic documents of 3-6 paragraphs about made-up products; one question each."""
    rng = random.Random(0)
    nouns = "kettle lamp valve pump sensor router drill heater filter battery cable panel".split()
    adjs = "blue compact industrial quiet wireless steel solar portable modular rugged".split()
    verbs = "measures heats filters stores routes powers cools cuts monitors connects".split()
    docs, queries, gold = [], [], []
    n = 0
    while n < paragraphs:
        name = f"{rng.choice(adjs)} {rng.choice(nouns)} model {len(docs):03d}"
        paras = []
        for _ in range(rng.randint(3, 6)):
            sents = [
                f"The {name} {rng.choice(verbs)} {rng.randint(2, 900)} units per hour "
                f"and weighs {rng.randint(1, 90)} kg when {rng.choice(adjs)}."
                for _ in range(rng.randint(2, 7))
            ]
            paras.append(" ".join(sents))
        n += len(paras)
        doc_id = f"products/{len(docs):03d}.md"
        docs.append(Document(doc_id, f"# {name}\n\n" + "\n\n".join(paras)))
        queries.append(f"How many units per hour does the {name} handle?")
        gold.append([doc_id])
    return docs, queries, gold


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", choices=["countries", "synthetic"], default="countries")
    ap.add_argument("--paragraphs", type=int, default=400, help="synthetic only")
    ap.add_argument("--rounds", type=int, default=3, help="build timings: N paired rounds")
    ap.add_argument("--chunk-size", type=int, default=800)
    ap.add_argument("--chunk-overlap", type=int, default=100)
    args = ap.parse_args()

    if args.source == "countries" and COUNTRIES.is_dir():
        docs, queries, gold = countries()
    else:
        docs, queries, gold = synthetic(args.paragraphs)
    chunking = ChunkingConfig(size=args.chunk_size, overlap=args.chunk_overlap)
    chunks = chunk_documents(docs, chunking)
    texts = [c.text for c in chunks]
    embedder = Embedder()
    model = embedder.model  # load once, outside every timing
    embedder.encode(texts[:64])  # warm up kernels and the tokenizer

    # Build: raw encode vs the full sync (chunk, diff, embed, add), alternating, best of N.
    raw_s, sync_s = [], []
    workdir = Path(tempfile.mkdtemp(prefix="bench-index-"))
    index = None
    for r in range(args.rounds):
        t0 = time.perf_counter()
        model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        raw_s.append(time.perf_counter() - t0)
        index = KnowledgeIndex(workdir / f"round{r}", name="bench", embedder=embedder, chunking=chunking)
        t0 = time.perf_counter()
        stats = index.sync(docs)
        sync_s.append(time.perf_counter() - t0)
        assert stats.embedded_chunks == len(chunks)
    assert index is not None
    t0 = time.perf_counter()
    resync = index.sync(docs)
    resync_s = time.perf_counter() - t0

    # Query: per-query latency of Chroma vs exact numpy search over the vectors Chroma holds.
    stored = index._collection.get(include=["embeddings"])
    ids = stored["ids"]
    matrix = np.asarray(stored["embeddings"], dtype=np.float32)
    qvecs = embedder.encode(queries)
    index.search(qvecs[:8], K)  # warm up
    chroma_lat, exact_lat, chroma_top, exact_top = [], [], [], []
    for q in qvecs:
        t0 = time.perf_counter()
        hits = index.search(q[None, :], K)[0]
        chroma_lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sims = matrix @ q
        top = np.argpartition(-sims, K)[:K] if len(sims) > K else np.arange(len(sims))
        top = top[np.argsort(-sims[top])]
        exact_lat.append(time.perf_counter() - t0)
        chroma_top.append([h.chunk_id for h in hits])
        exact_top.append([ids[i] for i in top])
    ann_recall = float(np.mean([len(set(c) & set(e)) / len(e) for c, e in zip(chroma_top, exact_top)]))
    t0 = time.perf_counter()
    batched = index.search(qvecs, K)
    batched_s = time.perf_counter() - t0
    ranked_sources = [[h.source_id for h in row] for row in batched]

    raw_rate, sync_rate = len(chunks) / min(raw_s), len(chunks) / min(sync_s)
    # Paired per round (raw and sync back to back), so load from other processes cancels out.
    ratio = float(np.median([r / s for r, s in zip(raw_s, sync_s)]))
    rows = [
        ("documents / chunks", f"{len(docs)} / {len(chunks)}", "", ""),
        ("build: raw encode, chunks/s", f"{raw_rate:.1f}", "reference", ""),
        (
            "build: KnowledgeIndex.sync, chunks/s",
            f"{sync_rate:.1f}",
            f"{ratio:.3f}",
            ">= 0.85",
        ),
        (
            "resync unchanged: embedded / seconds",
            f"{resync.embedded_chunks} / {resync_s:.2f}",
            "",
            "0 embedded",
        ),
        ("index on disk, MB", f"{(index.size_bytes() or 0) / 1e6:.1f}", "", ""),
        ("query p50 ms: exact numpy", f"{percentile_ms(exact_lat, 50):.3f}", "reference", ""),
        (
            "query p50 ms: Chroma",
            f"{percentile_ms(chroma_lat, 50):.3f}",
            f"{percentile_ms(chroma_lat, 50) / percentile_ms(exact_lat, 50):.1f}x",
            "",
        ),
        ("query p95 ms: exact numpy", f"{percentile_ms(exact_lat, 95):.3f}", "reference", ""),
        (
            "query p95 ms: Chroma",
            f"{percentile_ms(chroma_lat, 95):.3f}",
            f"{percentile_ms(chroma_lat, 95) / percentile_ms(exact_lat, 95):.1f}x",
            "",
        ),
        (f"Chroma batched, {len(qvecs)} queries, ms/query", f"{batched_s / len(qvecs) * 1000:.3f}", "", ""),
        (f"recall@{K} Chroma vs exact", f"{ann_recall:.4f}", "", ">= 0.99"),
        (
            f"gold recall@{K} / MRR (retrieval quality)",
            f"{recall_at_k(ranked_sources, gold, K):.3f} / {mrr(ranked_sources, gold):.3f}",
            "",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  {'ratio':>10}  goal")
    for name, value, ratio, goal in rows:
        print(f"{name:<{width}}  {value:>14}  {ratio:>10}  {goal}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
