"""The LoRA prompt form: training steps/s and scoring items/s, template only against as written.

    python bench/bench_lora_form.py [--task trec] [--steps 4] [--items 64] [--precision fp32]

Both forms in the same process, interleaved: LoRA steps (batches of 8 of the task's train items,
`baselines.lora_train.answer_loss` + backward + AdamW, the first step a warm-up) and label scoring
(`HFBackend.option_logprobs`, the task's labels or the gold answer as options) of the same items,
with the prompt as written (system message + template) and template only (the user turn). Prints
prompt tokens per item, the rates, and template/as-written ratios (goal: > 1). What the choice
keeps is measured by the run itself on the validation split (baselines/lora.py `choose_form`).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from advisor.backends.hf import HFBackend, load_base, to_precision  # noqa: E402
from advisor.data import load_examples  # noqa: E402
from advisor.prompting import answer_text, render_messages  # noqa: E402
from advisor.spec import load_task  # noqa: E402
from baselines.lora import in_form  # noqa: E402
from baselines.lora_train import TrainConfig, answer_loss, collate, encode, wrap_lora  # noqa: E402

FORMS = ("as_written", "template_only")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="trec")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = ap.parse_args()
    task = load_task(ROOT / "sample_tasks" / args.task / "task.yaml")
    loaded = load_base()
    tok = loaded.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    train = load_examples(task, task.data_path("train"), split="train")
    batch_items = train[: 8 * (args.steps + 1)]
    score_items = train[-args.items:]
    labels = list(task.labels or [])
    model = loaded.in_precision(args.precision)
    backend = HFBackend(loaded, model=model)
    steps_s: dict[str, float] = {}
    items_s: dict[str, float] = {}
    tokens: dict[str, float] = {}
    for form in FORMS:
        rows = [encode(tok, in_form(render_messages(task, ex), form), answer_text(task, ex.output), 2048)
                for ex in batch_items]
        peft_model = wrap_lora(to_precision(copy.deepcopy(loaded.model), args.precision), TrainConfig())
        peft_model.train()
        params = [p for p in peft_model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=5e-4)
        times = []
        for i in range(args.steps + 1):
            start = time.perf_counter()
            loss, n = answer_loss(peft_model, *collate(rows[i * 8:(i + 1) * 8], pad, loaded.device))
            (loss / max(n, 1)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
        steps_s[form] = args.steps / sum(times[1:])
        del peft_model, opt
        prompts = [backend.prompt_ids(in_form(render_messages(task, ex), form)) for ex in score_items]
        options = [labels or [answer_text(task, ex.output)] for ex in score_items]
        tokens[form] = sum(map(len, prompts)) / len(prompts)
        backend.option_logprobs(prompts[:8], options[:8], 8, report=False)  # warm-up
        start = time.perf_counter()
        backend.option_logprobs(prompts, options, 8, report=False)
        items_s[form] = len(prompts) / (time.perf_counter() - start)
    print(f"{args.task}, {args.precision}, {torch.get_num_threads()} threads")
    for form in FORMS:
        print(f"  {form:>14}: {tokens[form]:6.1f} prompt tokens/item, {steps_s[form]:.3f} train steps/s, "
              f"{items_s[form]:.2f} scoring items/s")
    print(f"template_only/as_written: train steps/s {steps_s['template_only'] / steps_s['as_written']:.2f}, "
          f"scoring items/s {items_s['template_only'] / items_s['as_written']:.2f}")


if __name__ == "__main__":
    main()
