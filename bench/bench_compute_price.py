"""Which measure of local compute is load-invariant: wall time, process CPU time, or tokens x a calibrated rate?

    python bench/bench_compute_price.py [--limit 48] [--hogs 2] [--task sample_tasks/trec/task.yaml]

Scores the same prompt-lever requests twice, on a quiet machine and with `--hogs` busy-loop
processes, and prints busy / quiet ratios for each measure (1.00 = invariant). No goal is
asserted: it is a measurement. Process CPU time counts every thread of this process
(time.process_time), including torch's worker threads spinning while they wait.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from advisor.backends import make_backend
from advisor.costs import token_price
from advisor.data import load_dataset
from advisor.registry import load_lever
from advisor.runner import Runner
from advisor.spec import load_task
from advisor.types import GenerationParams


def measure(backend, requests, params) -> dict[str, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    gens = backend.score_options(requests, params) if requests[0].options else backend.generate(requests, params)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"wall": wall, "cpu": cpu, "tokens_in": sum(g.tokens_in for g in gens),
            "tokens_out": sum(g.tokens_out for g in gens)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sample_tasks/trec/task.yaml")
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--hogs", type=int, default=2)
    args = ap.parse_args()

    task = load_task(args.task)
    data = load_dataset(task, limit=args.limit)
    backend = make_backend(task)
    runner = Runner(task, Path(tempfile.mkdtemp(prefix="bench-price-")), limit=args.limit, latency_probe=0)
    runner._backend = backend
    lever = load_lever("prompt")
    artifact = lever.prepare(runner.context(lever), lever.options_model())
    requests = lever.requests(artifact, data.eval)
    params = GenerationParams(max_new_tokens=task.prompt.max_new_tokens)
    price = token_price(backend, Path(tempfile.mkdtemp(prefix="bench-cal-")))
    assert price is not None
    measure(backend, requests[:8], params)  # warm-up

    quiet = measure(backend, requests, params)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        time.sleep(1.0)
        busy = measure(backend, requests, params)
    finally:
        for p in hogs:
            p.terminate()
            p.wait(timeout=10)
    priced = {k: price.seconds(m["tokens_in"], m["tokens_out"]) for k, m in (("quiet", quiet), ("busy", busy))}
    print(f"{len(requests)} prompt-lever requests, {args.hogs} busy-loop hogs")
    print(f"wall time        quiet {quiet['wall']:.2f} s  busy {busy['wall']:.2f} s  ratio {busy['wall'] / quiet['wall']:.2f}")
    print(f"process CPU time quiet {quiet['cpu']:.2f} s  busy {busy['cpu']:.2f} s  ratio {busy['cpu'] / quiet['cpu']:.2f}")
    print(f"tokens x rate    quiet {priced['quiet']:.2f} s  busy {priced['busy']:.2f} s  "
          f"ratio {priced['busy'] / priced['quiet']:.2f}  (rate calibrated once: {price.seconds_per_prompt_token:.2e} "
          f"s/prompt token, {price.seconds_per_output_token:.2e} s/output token)")


if __name__ == "__main__":
    main()
