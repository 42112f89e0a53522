"""Prompt-lever throughput against raw transformers, and the cost of a fully cached rerun.

    python bench/bench_prompt.py [--limit 120] [--task sample_tasks/trec/task.yaml]

Prints ratios against references measured in this same process (never absolute goals):
  harness / raw model.generate   goal >= 0.9  (the harness adds almost nothing)
  harness / direct score_options (pure bookkeeping overhead: rendering, hashing, the store)
  cached rerun / first run       goal <= 0.05
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from advisor.backends import make_backend
from advisor.registry import load_lever
from advisor.runner import Runner
from advisor.spec import load_task
from advisor.types import GenerationParams


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sample_tasks/trec/task.yaml")
    ap.add_argument("--limit", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    task = load_task(args.task)
    params = GenerationParams(max_new_tokens=task.prompt.max_new_tokens, batch_size=args.batch_size)
    workdir = Path(tempfile.mkdtemp(prefix="bench-prompt-"))
    backend = make_backend(task)  # load once, outside every timing

    runner = Runner(task, workdir, limit=args.limit, latency_probe=0, params=params)
    runner._backend = backend
    n = len(runner.data.eval)
    t0 = time.perf_counter()
    runner.run(["prompt"])
    harness_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner.run(["prompt"])
    cached_s = time.perf_counter() - t0

    lever = load_lever("prompt")
    artifact = lever.prepare(runner.context(lever), lever.options_model())
    requests = lever.requests(artifact, runner.data.eval)

    t0 = time.perf_counter()
    backend.score_options(requests, params)
    direct_s = time.perf_counter() - t0

    # The reference: the same prompts through plain batched model.generate, left-padded, greedy.
    tok, model = backend.tokenizer, backend.model
    texts = [tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in requests]
    tok.padding_side = "left"
    t0 = time.perf_counter()
    for i in range(0, len(texts), args.batch_size):
        enc = tok(texts[i : i + args.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            model.generate(**enc, max_new_tokens=task.prompt.max_new_tokens, do_sample=False,
                           pad_token_id=tok.pad_token_id)
    raw_s = time.perf_counter() - t0

    rows = [
        ("raw model.generate (reference)", raw_s),
        ("backend.score_options, direct", direct_s),
        ("advise prompt lever, first run", harness_s),
        ("advise prompt lever, cached rerun", cached_s),
    ]
    print(f"{task.name}: {n} eval items, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    for name, secs in rows:
        print(f"  {name:36s} {secs:8.2f} s  {n / secs:8.1f} examples/s")
    print(f"ratio harness / raw generate:       {raw_s / harness_s:6.2f}x throughput  (goal >= 0.9)")
    print(f"ratio harness / direct scoring:     {direct_s / harness_s:6.2f}x throughput  (bookkeeping overhead)")
    print(f"ratio cached rerun / first run:     {cached_s / harness_s:6.3f}            (goal <= 0.05)")


if __name__ == "__main__":
    main()
