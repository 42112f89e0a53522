"""Prompt-lever throughput against raw transformers, and the cost of a fully cached rerun.

    python bench/bench_prompt.py [--limit 120] [--task sample_tasks/trec/task.yaml]

Prints ratios against references measured in this same process (never absolute goals):
  harness / raw model.generate    the prompt lever's eval answers against plain batched generate
  harness / direct score_options  goal >= 0.9: the same eval answers, so only the bookkeeping
                                  (rendering, hashing, the store) differs
  with the task's wordings / without  what choosing a wording on the dev split costs (the
                                  wordings are each scored on the dev items, then the eval)
  cached rerun / first run        goal <= 0.05
The one-off compute-price calibration (advisor/costs.py) runs before every timing and is
printed on its own: it is paid once per machine and model, not per run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from advisor.backends import make_backend
from advisor.costs import token_price
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
    backend = make_backend(task)  # load once, outside every timing
    cache = Path(tempfile.mkdtemp(prefix="bench-prompt-cache-"))
    t0 = time.perf_counter()
    token_price(backend, cache)
    calibration_s = time.perf_counter() - t0

    def first_and_cached(t):  # (runner, first run's seconds, cached rerun's seconds)
        r = Runner(t, Path(tempfile.mkdtemp(prefix="bench-prompt-")), limit=args.limit, latency_probe=0,
                   params=params, cache_dir=cache)
        r._backend = backend
        t0 = time.perf_counter()
        r.run(["prompt"])
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r.run(["prompt"])
        return r, first, time.perf_counter() - t0

    eval_only = task.model_copy(update={"prompt": task.prompt.model_copy(update={"variants": {}})})
    runner, harness_s, cached_s = first_and_cached(eval_only)
    wordings = 1 + len(task.prompt.variants)
    search_s = first_and_cached(task)[1] if wordings > 1 else harness_s
    n = len(runner.data.eval)

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
    print(f"  one-off compute-price calibration     {calibration_s:8.2f} s")
    for name, secs in rows:
        print(f"  {name:36s} {secs:8.2f} s  {n / secs:8.1f} examples/s")
    print(f"  with the task's {wordings} wordings (dev search) {search_s:8.2f} s")
    print(f"ratio harness / raw generate:       {raw_s / harness_s:6.2f}x throughput")
    print(f"ratio harness / direct scoring:     {direct_s / harness_s:6.2f}x throughput  (goal >= 0.9)")
    print(f"ratio with wordings / without:      {search_s / harness_s:6.2f}x time      (dev search over {wordings} wordings)")
    print(f"ratio cached rerun / first run:     {cached_s / harness_s:6.3f}            (goal <= 0.05)")


if __name__ == "__main__":
    main()
