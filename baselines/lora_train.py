"""LoRA fine-tuning in one loop you can read top to bottom (after nanoGPT's train.py).

    pairs  = [(messages, answer), ...]              # the task's train split only
    result = train_lora(model, tokenizer, pairs, TrainConfig(), run_dir)
    result.model.save_pretrained(adapter_dir)       # peft format: PeftModel.from_pretrained loads it

Each step: take a batch, run the forward pass, compute the loss on the answer
tokens only (prompt tokens are labelled -100), backward, clip, optimizer step.
Every `eval_every` steps the loss on a validation split carved out of the
train examples decides early stopping; every `checkpoint_every` steps the
adapter, optimizer, step and RNG state are written atomically, so a killed run
resumes where it stopped. Same seed, same data, same config: same adapter.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

IGNORE = -100  # label of a position the loss skips (the prompt, the padding)
Messages = list[dict[str, str]]


class TrainConfig(BaseModel):
    """LoRA and optimizer settings; the defaults suit a ~100M model on a CPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(8, ge=1, description="LoRA rank: size of the low-rank update per matrix.")
    alpha: int = Field(16, ge=1, description="LoRA alpha; the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj"),
        description="Names of the linear layers that get a LoRA update (attention projections).",
    )
    learning_rate: float = Field(5e-4, gt=0, description="Peak AdamW learning rate.")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps before cosine decay.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay on LoRA weights.")
    epochs: int = Field(3, ge=1, description="Passes over the train split (capped by max_steps).")
    max_steps: int = Field(200, ge=1, description="Hard cap on optimizer steps.")
    batch_size: int = Field(8, ge=1, description="Examples per optimizer step.")
    max_len: int = Field(
        512, ge=8, description="Tokens per example; longer prompts lose their start (counted as truncated)."
    )
    val_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="Share of the train split held out for early stopping."
    )
    max_val: int = Field(128, ge=0, description="At most this many validation examples.")
    eval_every: int = Field(25, ge=1, description="Steps between validation-loss checks.")
    patience: int = Field(3, ge=1, description="Stop after this many checks without a lower validation loss.")
    checkpoint_every: int = Field(25, ge=1, description="Steps between resumable checkpoints.")
    grad_clip: float = Field(1.0, gt=0, description="Clip the gradient norm to this value.")
    seed: int = Field(0, description="Seeds LoRA init, data order and dropout.")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if not self.target_modules:
            raise ValueError("`target_modules` should name at least one layer, got none.")
        return self


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens: only the answer is learned
    truncated: bool = False


@dataclass
class StepInfo:
    """Handed to `on_step` after every optimizer step (for a progress bar)."""

    step: int
    total: int
    loss: float
    steps_per_s: float
    val_loss: float | None


@dataclass
class TrainResult:
    model: Any  # the PeftModel, holding the weights of the best validation check
    steps: int  # optimizer steps taken in total (across resumes)
    planned_steps: int
    best_val_loss: float | None
    best_step: int
    initial_val_loss: float | None
    train_seconds: float  # wall time of training, summed across resumes
    stopped_early: bool
    resumed_from: int | None  # the checkpoint step this run continued from
    n_train: int
    n_val: int
    tokens: int  # non-pad tokens processed
    truncated: int  # examples cut to max_len
    history: list[dict[str, float]] = field(default_factory=list)


# -- data --------------------------------------------------------------------------------------


def prompt_ids(tokenizer: Any, messages: Messages) -> list[int]:
    """Token ids of a chat prompt up to where the assistant's answer starts."""
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return list(ids)


def encode(tokenizer: Any, messages: Messages, answer: str, max_len: int) -> Encoded:
    """Prompt + answer + end-of-turn, labelled so only the answer and its end count.

    The answer is tokenized on its own, as the scorer tokenizes an option, so training
    and `score_options` see the same tokens. Too long: the prompt loses its start.
    """
    prompt = prompt_ids(tokenizer, messages)
    answer_ids = tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]
    answer_ids = answer_ids[: max_len // 2] if len(prompt) + len(answer_ids) > max_len else answer_ids
    room = max_len - len(answer_ids)
    truncated = len(prompt) > room
    prompt = prompt[len(prompt) - room :] if truncated else prompt
    return Encoded(prompt + answer_ids, [IGNORE] * len(prompt) + answer_ids, truncated)


def split_validation(n: int, cfg: TrainConfig) -> tuple[list[int], list[int]]:
    """Carve the validation indices out of the train split (never the eval split)."""
    import torch

    n_val = min(round(n * cfg.val_fraction), cfg.max_val)
    if cfg.val_fraction > 0 and n >= 4:
        n_val = max(n_val, 1)  # early stopping needs at least one example to look at
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    return sorted(order[n_val:]), sorted(order[:n_val])


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within chunks of 16 batches, shuffle.

    Sorting inside a chunk cuts padding (wasted compute) while the order stays random.
    A pure function of (seed, epoch), so a resumed run replays the same order.
    """
    import torch

    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist()
    chunk = batch_size * 16
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def collate(rows: list[Encoded], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """Right-pad a batch to its longest row: input ids, attention mask, labels."""
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
        mask[i, : len(r.input_ids)] = 1
        labels[i, : len(r.labels)] = torch.tensor(r.labels)
    return ids.to(device), mask.to(device), labels.to(device)


# -- model -------------------------------------------------------------------------------------


@contextmanager
def peft_quiet() -> Iterator[None]:
    """Hide the FutureWarning peft 0.x triggers inside transformers 5 (`is_gradient_checkpointing`)
    on every PeftModel it builds: it is about their code, not ours, and would litter the CLI."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def wrap_lora(model: Any, cfg: TrainConfig) -> Any:
    """Add LoRA layers to `model` in place (pass a copy) and return the PeftModel."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(cfg.seed)  # LoRA's A matrices start random: seed them
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
    )
    with peft_quiet():
        return get_peft_model(model, lora)


def shared_prefix(ids: Any, labels: Any, min_len: int = 16) -> int:
    """How many leading prompt tokens every row of the batch shares (0 if under `min_len`).

    Each row keeps at least one prompt token of its own: its last prompt position
    predicts its first answer token.
    """
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(dim=0).int().cumprod(0)  # 1 while every row agrees
    prompt_len = (labels != IGNORE).int().argmax(dim=1)  # first answer position per row
    n = min(int(same.sum()), int(prompt_len.min()) - 1)
    return n if n >= min_len else 0


def answer_loss(peft_model: Any, ids: Any, mask: Any, labels: Any) -> tuple[Any, int]:
    """Summed cross-entropy of the answer tokens, and how many there are.

    Two savings, both exact: the prompt prefix every row shares (the system message,
    the template's start) runs once per batch, its keys/values handed to every row,
    gradients flowing back through them; and the vocabulary projection, a fifth of
    the model, runs only at answer positions (a classification prompt of ~300 tokens
    has ~3).
    """
    import torch
    import torch.nn.functional as F

    causal_lm = peft_model.get_base_model()
    decoder = causal_lm.get_decoder()
    p = shared_prefix(ids, labels)
    if p:
        cache = decoder(input_ids=ids[:1, :p], use_cache=True).cache
        cache.batch_repeat_interleave(ids.shape[0])  # one copy per row; backward sums them
        positions = torch.arange(p, ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        out = decoder(input_ids=ids[:, p:], attention_mask=mask, position_ids=positions, cache=cache)
    else:
        out = decoder(input_ids=ids, attention_mask=mask)
    targets = labels[:, p + 1 :]  # position t predicts token t + 1; the prefix predicts no answer
    keep = targets != IGNORE
    logits = causal_lm.get_output_embeddings()(out.last_hidden_state[:, :-1][keep])
    loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, int(keep.sum())


def validation_loss(peft_model: Any, rows: list[Encoded], batch_size: int, pad_id: int) -> float:
    """Mean per-token answer loss over the validation rows, dropout off."""
    import torch

    if not rows:
        return float("nan")
    peft_model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            loss, n = answer_loss(peft_model, *collate(batch, pad_id, peft_model.device))
            total, count = total + float(loss), count + n
    peft_model.train()
    return total / max(count, 1)


def lr_at(step: int, cfg: TrainConfig, total: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak at the last planned step."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / (cfg.warmup_steps + 1)
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    floor = cfg.learning_rate / 10
    return floor + 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * (cfg.learning_rate - floor)


# -- checkpoints -------------------------------------------------------------------------------


def _checkpoints(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("ckpt-[0-9]*"))  # zero-padded names: sorted == by step


def _to_cpu(weights: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}


def save_checkpoint(
    run_dir: Path, peft_model: Any, optimizer: Any, best: dict[str, Any] | None, state: dict
) -> Path:
    """Adapter + best adapter + optimizer + step + RNG, written to a temp folder then renamed.

    A run killed mid-write leaves only a `.tmp` folder, never a half checkpoint.
    """
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    final = run_dir / f"ckpt-{state['step']:07d}"
    tmp = run_dir / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = get_peft_model_state_dict(peft_model)
    save_file(_to_cpu(weights), str(tmp / "adapter.safetensors"))
    if best is not None:
        save_file(_to_cpu(best), str(tmp / "best.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    os.replace(tmp, final)
    for old in _checkpoints(run_dir)[:-1]:  # the newest is enough to resume
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(ckpt: Path, peft_model: Any, optimizer: Any) -> tuple[dict, dict[str, Any] | None]:
    """Restore a checkpoint into the model and optimizer; return its state and best weights."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    device = str(peft_model.device)
    set_peft_model_state_dict(peft_model, load_file(str(ckpt / "adapter.safetensors"), device))
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device))
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    best_path = ckpt / "best.safetensors"
    best = load_file(str(best_path), device) if best_path.is_file() else None
    return json.loads((ckpt / "state.json").read_text()), best


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = [p for p in _checkpoints(run_dir) if (p / "state.json").is_file()]
    return found[-1] if found else None


# -- the loop ----------------------------------------------------------------------------------


def train_lora(
    model: Any,
    tokenizer: Any,
    pairs: list[tuple[Messages, str]],
    cfg: TrainConfig,
    run_dir: Path,
    on_step: Callable[[StepInfo], None] | None = None,
    on_status: Callable[[str], AbstractContextManager[Any]] | None = None,
    on_check: Callable[[], Any] | None = None,
) -> TrainResult:
    """Fine-tune LoRA layers on (chat messages, answer) pairs; resume from `run_dir` if it holds a checkpoint.

    `model` is changed in place (LoRA layers are added): pass a copy of a shared model.
    `on_status(text)` wraps each step before the first optimizer step (tokenising, adding the
    layers, the validation loss before training), so a progress display is never silent.
    `on_check()` before every step: the run's thread-count check (advisor.compute.ThreadChoice,
    which measures at most once a minute); it must not touch the model's weights.
    """
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    if not pairs:
        raise ValueError("`pairs` should hold at least one training example, got none.")
    run_dir.mkdir(parents=True, exist_ok=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    # Data: encode once, carve validation out of train, plan the steps.
    say = on_status or (lambda text: nullcontext())
    with say(f"tokenising {len(pairs)} examples"):
        rows = [encode(tokenizer, m, a, cfg.max_len) for m, a in pairs]
    train_idx, val_idx = split_validation(len(rows), cfg)
    train_rows, val_rows = [rows[i] for i in train_idx], [rows[i] for i in val_idx]
    lengths = [len(r.input_ids) for r in train_rows]
    per_epoch = math.ceil(len(train_rows) / cfg.batch_size)
    total = min(cfg.max_steps, cfg.epochs * per_epoch)

    # Model and optimizer: only the LoRA matrices train.
    with say(f"adding LoRA layers (r={cfg.r})"):
        peft_model = wrap_lora(model, cfg)
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    # Resume: everything the loop below reads comes from the checkpoint when there is one.
    state: dict[str, Any] = {
        "step": 0, "best_val": None, "best_step": 0, "bad_checks": 0, "initial_val": None,
        "train_seconds": 0.0, "tokens": 0, "history": [],
    }  # fmt: skip
    best: dict[str, Any] | None = None
    resumed_from = None
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        state, best = load_checkpoint(ckpt, peft_model, optimizer)
        resumed_from = state["step"]
    else:
        torch.manual_seed(cfg.seed)  # dropout masks
        if val_rows:  # the loss before training, for the record
            with say(f"validation loss before training ({len(val_rows)} examples)"):
                state["initial_val"] = validation_loss(peft_model, val_rows, cfg.batch_size, pad_id)

    step, stopped_early = state["step"], False
    started, recent = time.perf_counter(), time.perf_counter()
    epoch = step // per_epoch
    batches = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch)
    while step < total:
        # batch: the order is a function of (seed, epoch), so resuming replays it exactly
        if step // per_epoch != epoch:
            epoch = step // per_epoch
            batches = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch)
        batch = [train_rows[i] for i in batches[step % per_epoch]]
        ids, mask, labels = collate(batch, pad_id, peft_model.device)
        if on_check is not None:
            on_check()

        # forward + loss (answer tokens only) + backward + step
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg, total)
        loss_sum, n_tokens = answer_loss(peft_model, ids, mask, labels)
        loss = loss_sum / max(n_tokens, 1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        state["tokens"] += int(mask.sum())
        record: dict[str, float] = {"step": step, "loss": loss.item()}

        # eval: keep the best weights; stop when validation stops improving
        val_loss = None
        if val_rows and (step % cfg.eval_every == 0 or step == total):
            val_loss = validation_loss(peft_model, val_rows, cfg.batch_size, pad_id)
            record["val_loss"] = val_loss
            if state["best_val"] is None or val_loss < state["best_val"] - 1e-4:
                state.update(best_val=val_loss, best_step=step, bad_checks=0)
                best = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
            else:
                state["bad_checks"] += 1
                stopped_early = state["bad_checks"] >= cfg.patience
        state["history"].append(record)

        now = time.perf_counter()
        if on_step is not None:
            on_step(StepInfo(step, total, record["loss"], 1.0 / max(now - recent, 1e-9), val_loss))
        recent = now

        # save: a resumable checkpoint every `checkpoint_every` steps
        if step % cfg.checkpoint_every == 0 and step < total and not stopped_early:
            state.update(step=step, train_seconds=state["train_seconds"] + now - started)
            started = now
            save_checkpoint(run_dir, peft_model, optimizer, best, state)
        if stopped_early:
            break

    state["train_seconds"] += time.perf_counter() - started
    if best is not None:  # hand back the weights of the best validation check, not the last step
        set_peft_model_state_dict(peft_model, best)
    peft_model.eval()
    return TrainResult(
        model=peft_model,
        steps=step,
        planned_steps=total,
        best_val_loss=state["best_val"],
        best_step=state["best_step"] if best is not None else step,
        initial_val_loss=state["initial_val"],
        train_seconds=state["train_seconds"],
        stopped_early=stopped_early,
        resumed_from=resumed_from,
        n_train=len(train_rows),
        n_val=len(val_rows),
        tokens=state["tokens"],
        truncated=sum(r.truncated for r in rows),
        history=state["history"],
    )


def clear_checkpoints(run_dir: Path) -> None:
    """Remove checkpoints once the final adapter is saved; they are only for resuming."""
    for p in list(run_dir.glob("ckpt-*")) + list(run_dir.glob(".ckpt-*")):
        shutil.rmtree(p, ignore_errors=True)
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
