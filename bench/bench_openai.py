"""Eval throughput of the `openai:` backend: N requests in flight against one at a time.

A real llama.cpp server (xllamacpp, the embedded SmolLM2) sits behind a proxy that adds a fixed
300 ms to every request, the latency of a hosted API (the local server alone is CPU-bound here).
Same eval items, same process, a warm-up pass first so both runs meet the same prompt cache.
Also: a cached rerun's time as a fraction of the first run's (every answer comes from the store).

    .venv/bin/python bench/bench_openai.py [--items 32] [--concurrency 8] [--delay 0.3]

Goals (issue 11): speed-up >= 0.8 * N for N = 8; cached rerun <= 0.05 of the first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "openai"))  # the test suite's server launcher and proxy

from openai_helpers import LlamaServer  # noqa: E402
from openai_proxy import FaultProxy  # noqa: E402

from advisor.runner import Runner  # noqa: E402
from advisor.spec import load_task  # noqa: E402


def write_task(folder: Path, base_url: str, items: int, concurrency: int) -> Path:
    src = ROOT / "sample_tasks" / "trec"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 20), ("eval", items)):
        lines = (src / "data" / f"{split}.jsonl").read_text().splitlines()[:n]
        (folder / "data" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "task.yaml").write_text(f"""name: bench-openai
kind: classification
labels: [ABBR, DESC, ENTY, HUM, LOC, NUM]
data: {{train: data/train.jsonl, eval: data/eval.jsonl}}
prompt: {{system: "Classify the question by the type of answer it expects.", template: "Question: {{{{ input }}}}\\nType:",
          max_new_tokens: 4}}
target: {{metric: accuracy, threshold: 0.8}}
levers: [prompt]
model: openai:smollm2
openai: {{base_url: '{base_url}', max_concurrency: {concurrency}, classification: first_token_logprobs}}
""")
    return folder / "task.yaml"


def timed_run(task_file: Path, workdir: Path) -> tuple[float, int]:
    task = load_task(task_file)
    runner = Runner(task, workdir, latency_probe=0)
    start = time.perf_counter()
    try:
        result = runner.run()
    finally:
        runner.store.close()
    return time.perf_counter() - start, result.levers[0].computed


def compare(server: LlamaServer, tmp: Path, args: argparse.Namespace, replay: bool) -> tuple[float, float, float]:
    """(1 in flight, N in flight, cached rerun) seconds through the 300 ms proxy."""
    with FaultProxy(server.url, delay_s=args.delay, replay=replay) as proxy:
        base = f"{proxy.url}/v1"
        tag = "replay" if replay else "live"
        # Warm-up: fills the server's prompt cache (and, replaying, the proxy's answers).
        timed_run(write_task(tmp / f"warm-{tag}", base, args.items, args.concurrency), tmp / f"warm-{tag}-run")
        one, n_one = timed_run(write_task(tmp / f"one-{tag}", base, args.items, 1), tmp / f"one-{tag}-run")
        many_task = write_task(tmp / f"many-{tag}", base, args.items, args.concurrency)
        many, n_many = timed_run(many_task, tmp / f"many-{tag}-run")
        cached, n_cached = timed_run(many_task, tmp / f"many-{tag}-run")
    assert n_one == n_many == args.items and n_cached == 0
    return one, many, cached


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--delay", type=float, default=0.3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-openai-"))
    server = LlamaServer(tmp / "server.log", parallel=args.concurrency)
    n = args.concurrency
    print(f"{args.items} TREC eval items, +{args.delay * 1000:.0f} ms per request (proxy); llama.cpp server "
          f"with {n} slots on 1 thread")
    try:
        for replay, what in ((True, "fixed-latency API (the proxy replays the server's answers)"),
                             (False, "live server behind the proxy (also bound by this machine's CPU)")):
            one, many, cached = compare(server, tmp, args, replay)
            print(f"{what}:\n  1 in flight {one:.2f} s ({args.items / one:.2f} items/s); {n} in flight "
                  f"{many:.2f} s ({args.items / many:.2f} items/s); speed-up {one / many:.2f}x = "
                  f"{one / many / n:.2f} N (goal >= 0.8 N)\n  cached rerun {cached:.3f} s = "
                  f"{cached / many:.3f} of the first run (goal <= 0.05)\n  answering alone (each run less the "
                  f"cached rerun's fixed cost: load, score, bootstrap): speed-up "
                  f"{(one - cached) / (many - cached):.2f}x = {(one - cached) / (many - cached) / n:.2f} N")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
