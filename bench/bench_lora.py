"""LoRA training throughput: advise's loop against a plain peft + torch loop, same process.

    python bench/bench_lora.py [--task trec] [--examples 192] [--steps 12] [--batch 8] [--max-len 512] [--rounds 2]

Both loops train the same LoRA (r=8 on q/k/v/o) on the same model, the same examples
(the sample task's train split, rendered with its prompt) and the same batch size, on
the answer tokens only. The reference is what one writes from the peft docs: shuffle,
pad each batch to its longest row, `model(**batch, labels=labels).loss`, backward, step.
advise's loop (`baselines.lora_train.train_lora`, validation and checkpoints off) adds
length bucketing, runs the prompt prefix a batch shares once, and projects to the
vocabulary only at answer positions.

Prints non-pad tokens per second for each (best round), the ratio (goal >= 1.0), padding
share, and peak memory above the loaded model (RSS sampled every 10 ms; CUDA: max allocated).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import math
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advisor.backends.hf import load_base  # noqa: E402
from advisor.data import load_dataset  # noqa: E402
from advisor.prompting import answer_text, render_messages  # noqa: E402
from advisor.spec import load_task  # noqa: E402
from baselines.lora_train import IGNORE, TrainConfig, collate, encode, train_lora  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "sample_tasks"


def release_free_memory() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak RSS (or CUDA allocation) above the level at entry, sampled in a thread."""

    def __enter__(self) -> PeakMemory:
        gc.collect()
        release_free_memory()  # freed memory of an earlier round would hide this round's growth
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = rss_bytes()
        self.peak, self._stop = self.base, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.cuda:
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.peak = max(self.peak, rss_bytes())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def reference_loop(model, rows, cfg: TrainConfig, pad_id: int) -> tuple[int, float, int]:
    """The plain loop from the peft docs; returns (non-pad tokens, seconds, padded tokens)."""
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=list(cfg.target_modules),
        ),
    )
    peft_model.train()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    order = list(range(len(rows)))
    random.Random(cfg.seed).shuffle(order)
    tokens = padded = 0
    start = time.perf_counter()
    for step in range(cfg.max_steps):
        idx = [order[(step * cfg.batch_size + i) % len(order)] for i in range(cfg.batch_size)]
        ids, mask, labels = collate([rows[i] for i in idx], pad_id, peft_model.device)
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(peft_model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        padded += mask.numel()
    return tokens, time.perf_counter() - start, padded


def advise_loop(model, tokenizer, pairs, cfg: TrainConfig) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        r = train_lora(model, tokenizer, pairs, cfg, Path(tmp))
    return r.tokens, r.train_seconds, r.history[-1]["loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="trec", help="sample task folder under sample_tasks/")
    ap.add_argument("--examples", type=int, default=192)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    task = load_task(SAMPLES / args.task / "task.yaml")
    train = load_dataset(task).train[: args.examples]
    loaded = load_base(task.model_name)
    tok = loaded.tokenizer
    pairs = [(render_messages(task, ex), answer_text(task, ex.output)) for ex in train]
    # Checkpoints and validation off: the benchmark times the training steps alone.
    cfg = TrainConfig(
        max_steps=args.steps,
        epochs=10_000,
        batch_size=args.batch,
        max_len=args.max_len,
        val_fraction=0.0,
        checkpoint_every=10**9,
        eval_every=10**9,
    )
    rows = [encode(tok, m, a, cfg.max_len) for m, a in pairs]
    n_answer = sum(sum(label != IGNORE for label in r.labels) for r in rows)
    lengths = [len(r.input_ids) for r in rows]
    print(
        f"task {task.name}: {len(rows)} examples, {min(lengths)}..{max(lengths)} tokens "
        f"(mean {sum(lengths) / len(lengths):.0f}), {n_answer / len(rows):.1f} answer tokens each; "
        f"batch {cfg.batch_size}, {cfg.max_steps} steps, device {loaded.device}, "
        f"{torch.get_num_threads()} threads"
    )

    best = {"advise": 0.0, "reference": 0.0}
    memory = {"advise": 0.0, "reference": 0.0}
    pad_share = 0.0
    for rnd in range(args.rounds):
        for name in ("reference", "advise") if rnd % 2 == 0 else ("advise", "reference"):
            model = copy.deepcopy(loaded.model)
            with PeakMemory() as mem:
                if name == "advise":
                    tokens, seconds, _ = advise_loop(model, tok, pairs, cfg)
                else:
                    tokens, seconds, padded = reference_loop(model, rows, cfg, tok.pad_token_id)
                    pad_share = 1 - tokens / padded
            rate = tokens / seconds
            best[name] = max(best[name], rate)
            memory[name] = max(memory[name], mem.mib)
            print(
                f"round {rnd + 1} {name:9s}: {tokens} tokens in {seconds:6.1f} s = {rate:7.0f} tok/s "
                f"({seconds / cfg.max_steps:.2f} s/step), peak +{mem.mib:.0f} MiB"
            )
            del model
            gc.collect()

    ratio = best["advise"] / best["reference"]
    print(f"reference padding share: {pad_share:.1%}")
    print(f"advise    {best['advise']:7.0f} tok/s   peak +{memory['advise']:.0f} MiB over the loaded model")
    print(f"reference {best['reference']:7.0f} tok/s   peak +{memory['reference']:.0f} MiB")
    print(
        f"throughput ratio advise/reference: {ratio:.2f} (goal >= 1.0){'' if ratio >= 1 else '  BELOW GOAL'}"
    )
    print(f"process peak RSS: {rss_peak_mib():.0f} MiB")
    if not math.isfinite(ratio):
        sys.exit(1)


def rss_peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
