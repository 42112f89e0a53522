"""Threads and OpenMP wait policy, quiet and under load: LoRA steps/s and scoring items/s.

    python bench/bench_threads.py [--busy 6] [--steps 3] [--items 32]

Each setting runs in a fresh process (OMP_WAIT_POLICY is read when OpenMP starts): torch with
all cores' threads (today's default) or one thread, OpenMP's default wait policy or PASSIVE,
on a quiet machine and while `--busy` spinning processes keep the cores loaded (the load a
shared CI box or a laptop running other jobs sees). Both workloads are the project's own
paths: `baselines.lora_train.answer_loss` + backward + AdamW on TREC's prompts, and
`HFBackend.option_logprobs` on TREC train items, in the precision `--dtype` names.

Prints each setting's rate and its ratio to the reference measured in the same run (all
threads, default policy, same load), (advisor.compute.ThreadChoice makes the 1-vs-all choice at run time).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(threads: int, steps: int, items: int, dtype: str) -> dict[str, float]:
    import copy

    import torch

    sys.path.insert(0, str(ROOT))
    from advisor.backends.hf import HFBackend, load_base, to_precision
    from advisor.data import load_dataset
    from advisor.prompting import answer_text, render_messages
    from advisor.spec import load_task
    from baselines.lora_train import TrainConfig, answer_loss, collate, encode, wrap_lora

    torch.set_num_threads(threads)
    task = load_task(ROOT / "sample_tasks/trec/task.yaml")
    data = load_dataset(task)
    loaded = load_base()
    model = to_precision(copy.deepcopy(loaded.model), dtype).eval()
    backend = HFBackend(loaded, model=model)
    prompts = [backend.prompt_ids(render_messages(task, e)) for e in data.train[:items]]
    opts = [list(task.labels)] * len(prompts)
    backend.option_logprobs(prompts[:8], opts[:8], 8, report=False)  # warm-up
    start = time.perf_counter()
    backend.option_logprobs(prompts, opts, 8, report=False)
    scoring = len(prompts) / (time.perf_counter() - start)

    tok = loaded.tokenizer
    rows = [encode(tok, render_messages(task, e), answer_text(task, e.output), 512) for e in data.train[:8 * (steps + 1)]]
    peft_model = wrap_lora(to_precision(copy.deepcopy(loaded.model), dtype), TrainConfig())
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-4)
    times = []
    for i in range(steps + 1):  # the first step warms up
        ids, mask, labels = collate(rows[i * 8:(i + 1) * 8], tok.eos_token_id, "cpu")
        t0 = time.perf_counter()
        loss, n = answer_loss(peft_model, ids, mask, labels)
        (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return {"scoring_items_per_s": scoring, "train_steps_per_s": steps / sum(times[1:])}


def spin() -> None:
    while True:
        pass


def run_setting(threads: int, policy: str | None, args: argparse.Namespace) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, __file__, "--worker", str(threads), "--steps", str(args.steps), "--items",
           str(args.items), "--dtype", args.dtype]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--busy", type=int, default=6, help="spinning processes for the loaded half")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.steps, args.items, args.dtype)))
        return
    cores = len(os.sched_getaffinity(0))
    settings = [(cores, None), (cores, "PASSIVE"), (1, None), (1, "PASSIVE")]
    print(f"{cores} cores, {args.dtype}; each setting in a fresh process")
    for load in ("quiet", f"{args.busy} busy processes"):
        procs = []
        if load != "quiet":
            procs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
            for p in procs:
                p.start()
            time.sleep(2)
        try:
            results = {(t, p): run_setting(t, p, args) for t, p in settings}
        finally:
            for p in procs:
                p.terminate()
        ref = results[(cores, None)]
        print(f"\n{load} (load average {os.getloadavg()[0]:.1f}):")
        print(f"{'threads':>8} {'wait policy':>12} {'train steps/s':>14} {'ratio':>6} {'scoring items/s':>16} {'ratio':>6}")
        for (t, p), r in results.items():
            print(f"{t:>8} {p or 'default':>12} {r['train_steps_per_s']:>14.3f} "
                  f"{r['train_steps_per_s'] / ref['train_steps_per_s']:>6.2f} {r['scoring_items_per_s']:>16.2f} "
                  f"{r['scoring_items_per_s'] / ref['scoring_items_per_s']:>6.2f}")


if __name__ == "__main__":
    main()
