"""How local compute is priced against what it measures: token price vs CPU time, and under load.

    python bench/bench_compute_price.py [--limit 48] [--hogs 2] [--lever prompt] [--task sample_tasks/trec/task.yaml]

1. Price vs measured, on a quiet machine: the lever's requests are scored once with torch on one
   thread, timed by process CPU time divided by the threads a run uses (the calibration's own
   measure), and set beside the token price per query two ways, in the same run: every prompt
   token charged (the old price) and only the prompt tokens computed, those read from a
   shared-prefix cache left out (the price now). Ratio 1.00: the price is what was measured.
2. Load: the same requests twice, quiet and with `--hogs` busy-loop processes (0 skips it); busy /
   quiet ratios of wall time, process CPU time and the token price (1.00 = load-invariant).

No goal is asserted: it is a measurement. The task's prompt variants are left out (the default
wording is measured; choosing a variant on dev is setup, not per-query compute).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from advisor.backends import make_backend
from advisor.costs import token_price
from advisor.data import load_dataset
from advisor.registry import load_lever
from advisor.runner import Runner
from advisor.spec import load_task
from advisor.types import GenerationParams


def measure(backend, requests, params, threads: int | None = None) -> dict[str, float]:
    """Wall and process CPU seconds of answering `requests` (torch on `threads` threads if given), and
    their tokens: prompt, of those read from a shared-prefix cache, generated."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        gens = backend.score_options(requests, params) if requests[0].options else backend.generate(requests, params)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        torch.set_num_threads(before)
    return {"wall": wall, "cpu": cpu, "tokens_in": sum(g.tokens_in for g in gens),
            "tokens_in_cached": sum(g.tokens_in_cached for g in gens), "tokens_out": sum(g.tokens_out for g in gens)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sample_tasks/trec/task.yaml")
    ap.add_argument("--lever", default="prompt")
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--hogs", type=int, default=2)
    args = ap.parse_args()

    task = load_task(args.task)
    task = task.model_copy(update={"prompt": task.prompt.model_copy(update={"variants": {}})})
    data = load_dataset(task, limit=args.limit)
    backend = make_backend(task)
    runner = Runner(task, Path(tempfile.mkdtemp(prefix="bench-price-")), limit=args.limit, latency_probe=0)
    runner._backend = backend
    lever = load_lever(args.lever)
    artifact = lever.prepare(runner.context(lever), lever.options_model())
    requests = lever.requests(artifact, data.eval)
    params = GenerationParams(max_new_tokens=task.prompt.max_new_tokens)
    price = token_price(backend, Path(tempfile.mkdtemp(prefix="bench-cal-")))
    assert price is not None
    measure(backend, requests[:8], params)  # warm-up (and the content-free reference, cached after)
    n, run_threads = len(requests), torch.get_num_threads()

    one = measure(backend, requests, params, threads=1)
    measured = one["cpu"] / run_threads / n
    before = price.seconds(one["tokens_in"], one["tokens_out"]) / n
    after = price.seconds(one["tokens_in"] - one["tokens_in_cached"], one["tokens_out"]) / n
    print(f"{args.lever}: {n} requests, mean {one['tokens_in'] / n:.1f} prompt tokens of which "
          f"{one['tokens_in_cached'] / n:.1f} read from a shared-prefix cache, {one['tokens_out'] / n:.2f} output tokens")
    print(f"rate calibrated once: {price.seconds_per_prompt_token:.2e} s/prompt token, "
          f"{price.seconds_per_output_token:.2e} s/output token (1-thread CPU time / {run_threads} threads)")
    print(f"measured CPU time            {measured:.4f} s/query (1 thread, / {run_threads} threads)")
    print(f"priced, every prompt token   {before:.4f} s/query  ratio priced/measured {before / measured:.2f}  (before)")
    print(f"priced, computed tokens only {after:.4f} s/query  ratio priced/measured {after / measured:.2f}  (now)")
    if args.hogs <= 0:
        return

    quiet = measure(backend, requests, params)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        time.sleep(1.0)
        busy = measure(backend, requests, params)
    finally:
        for p in hogs:
            p.terminate()
            p.wait(timeout=10)
    priced = {k: price.seconds(m["tokens_in"] - m["tokens_in_cached"], m["tokens_out"])
              for k, m in (("quiet", quiet), ("busy", busy))}
    print(f"\nload: {args.hogs} busy-loop hogs")
    print(f"wall time        quiet {quiet['wall']:.2f} s  busy {busy['wall']:.2f} s  ratio {busy['wall'] / quiet['wall']:.2f}")
    print(f"process CPU time quiet {quiet['cpu']:.2f} s  busy {busy['cpu']:.2f} s  ratio {busy['cpu'] / quiet['cpu']:.2f}")
    print(f"tokens x rate    quiet {priced['quiet']:.2f} s  busy {priced['busy']:.2f} s  "
          f"ratio {priced['busy'] / priced['quiet']:.2f}")


if __name__ == "__main__":
    main()
