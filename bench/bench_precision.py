"""fp32 against bf16 on this machine's CPU, on the project's own paths, and what `advise` picks.

    python bench/bench_precision.py [--task trec] [--items 32] [--rounds 2]

Scoring: `HFBackend.option_logprobs` on the task's first train items (as the zero-shot prompt
asks them; labels as options, or the gold answer as the one option for a generation task), fp32
and bf16 interleaved, fastest of `--rounds`: items/s of each, the ratio, the median and 95th
percentile |d log p| per option token, and how often bf16 picks fp32's label. Training: LoRA
steps (batches of 8, the task's prompts as written, then template-only) on fp32 and on bf16 base
weights from the same init: steps/s, the ratio, the loss difference. The same functions decide
at run time (advisor.compute); the last lines say what they pick here and the CPU flags.

Frozen weights: the same scoring with the weights' gradients off, as in a merged LoRA model, in fp32,
in bf16 as `.to(bfloat16)` leaves it, and in bf16 through `advisor.backends.hf.to_precision` (the
output projection's input made contiguous): items/s of each and the ratio to fp32's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor import compute  # noqa: E402
from advisor.backends.hf import HFBackend, load_base, to_precision  # noqa: E402
from advisor.data import load_examples  # noqa: E402
from advisor.prompting import answer_text, render_messages  # noqa: E402
from advisor.spec import load_task  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="trec")
    ap.add_argument("--items", type=int, default=compute.PROBE_ITEMS)
    args = ap.parse_args()
    task = load_task(ROOT / "sample_tasks" / args.task / "task.yaml")
    loaded = load_base()
    compute.PROBE_ITEMS = args.items
    print(f"CPU: {compute.cpu_model()}; flags: {' '.join(compute.cpu_flags()) or 'none of ' + ', '.join(compute.CPU_FLAGS_SHOWN)}"
          f"; {compute.cores()} cores; torch threads as torch sets them")
    probe = compute.scoring_probe(task)
    s = compute.measure_scoring(loaded, probe)
    fp, bf = s["scoring_seconds"]["fp32"], s["scoring_seconds"]["bf16"]
    print(f"\nscoring, {len(probe)} train items of {args.task}:")
    print(f"  fp32 {len(probe) / fp:6.2f} items/s   bf16 {len(probe) / bf:6.2f} items/s   bf16/fp32 speed: {s['scoring_speedup']:.2f}")
    agree = s["label_agreement"]
    print(f"  |d log p| per option token: median {s['logp_median_abs_diff']:.4f}, p95 {s['logp_p95_abs_diff']:.4f} nats"
          + (f"; same label on {agree:.1%} of items" if agree is not None else ""))
    frozen_scoring(loaded, probe)
    train = load_examples(task, task.data_path("train"), split="train")[: 8 * (compute.PROBE_STEPS + 1)]
    forms = {"as written": [(render_messages(task, ex), answer_text(task, ex.output)) for ex in train],
             "template only": [([m for m in render_messages(task, ex) if m["role"] != "system"],
                                answer_text(task, ex.output)) for ex in train]}
    decisions = [("scoring", compute._decide_scoring(s))]
    for name, pairs in forms.items():
        t = compute.measure_training(loaded, pairs)
        secs = t["training_step_seconds"]
        print(f"\nLoRA training, prompt {name} ({compute.PROBE_STEPS} steps of 8 after a warm-up step):")
        print(f"  fp32 {1 / secs['fp32']:.3f} steps/s   bf16 {1 / secs['bf16']:.3f} steps/s   "
              f"bf16/fp32 speed: {t['training_speedup']:.2f}   loss difference: {t['loss_rel_diff']:.1%}")
        decisions.append((f"training ({name})", compute._decide_training(t)))
    print()
    for use, (picked, why) in decisions:
        print(f"picks for {use}: {picked} — {why}")


def frozen_scoring(loaded, probe) -> None:
    """Items/s of option scoring with frozen weights (a merged LoRA model's): fp32, bf16 as cast,
    bf16 through to_precision; fastest of 2 passes each, interleaved."""
    import copy

    import torch

    frozen = copy.deepcopy(loaded.model).requires_grad_(False)
    models = {"fp32": frozen, "bf16 (cast)": copy.deepcopy(frozen).to(torch.bfloat16),
              "bf16 (to_precision)": to_precision(copy.deepcopy(frozen), "bf16")}
    backends = {k: HFBackend(loaded, model=m) for k, m in models.items()}
    prompts = [backends["fp32"].prompt_ids(m) for m, _ in probe]
    options = [list(o) for _, o in probe]
    for b in backends.values():  # warm-up
        b.option_logprobs(prompts[:4], options[:4], 8, report=False)
    best, _ = compute._best_of({k: (lambda b=b: b.option_logprobs(prompts, options, 8, report=False))
                                for k, b in backends.items()})
    print(f"\nscoring with frozen weights (a merged LoRA model's), {len(probe)} items:")
    print("  " + "   ".join(f"{k} {len(probe) / v:6.2f} items/s ({best['fp32'] / v:.2f}x fp32)" for k, v in best.items()))


if __name__ == "__main__":
    main()
