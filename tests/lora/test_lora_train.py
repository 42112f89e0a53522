"""The training loop: answer-only loss, validation carved from train, peft format, resume after kill -9."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baselines.lora_train import (
    IGNORE,
    TrainConfig,
    encode,
    epoch_batches,
    latest_checkpoint,
    peft_quiet,
    prompt_ids,
    split_validation,
    train_lora,
)

TINY = dict(max_len=64, batch_size=4, val_fraction=0.25, learning_rate=1e-3, warmup_steps=2)


def test_config_names_the_bad_field():
    with pytest.raises(ValueError, match="target_modules"):
        TrainConfig(target_modules=())
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=0)
    with pytest.raises(ValueError, match="lr"):  # extra="forbid": a typo is an error
        TrainConfig(lr=1e-3)


def test_batches_cover_each_example_once_and_repeat_under_a_seed():
    lengths = [5, 40, 7, 33, 12, 9, 60, 2, 18, 21, 30]
    batches = epoch_batches(lengths, 4, seed=3, epoch=1)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches == epoch_batches(lengths, 4, seed=3, epoch=1)
    assert batches != epoch_batches(lengths, 4, seed=3, epoch=2)


def test_validation_is_carved_from_train():
    train, val = split_validation(16, TrainConfig(val_fraction=0.25))
    assert len(val) == 4 and not set(train) & set(val) and sorted(train + val) == list(range(16))


@pytest.mark.slow
def test_encode_masks_the_prompt_and_keeps_the_answer(loaded):
    tok = loaded.tokenizer
    messages = [{"role": "user", "content": "Question: " + "very " * 200 + "long?\nType:"}]
    row = encode(tok, messages, "DESC", max_len=64)
    answer = tok.encode("DESC", add_special_tokens=False) + [tok.eos_token_id]
    assert len(row.input_ids) == 64 and row.truncated
    assert row.input_ids[-len(answer) :] == answer
    assert row.labels == [IGNORE] * (64 - len(answer)) + answer


@pytest.mark.slow
def test_short_run_lowers_loss_and_reloads_with_identical_logits(loaded, pairs, tmp_path):
    import torch
    from peft import PeftModel

    before = {k: v.clone() for k, v in list(loaded.model.state_dict().items())[:3]}
    cfg = TrainConfig(**TINY, max_steps=8, epochs=4, eval_every=4, checkpoint_every=100)
    result = train_lora(copy.deepcopy(loaded.model), loaded.tokenizer, pairs, cfg, tmp_path / "run")
    print(
        f"\nval loss {result.initial_val_loss:.3f} -> {result.best_val_loss:.3f}; train loss "
        f"{result.history[0]['loss']:.3f} -> {result.history[-1]['loss']:.3f}; "
        f"{result.train_seconds / result.steps:.2f} s/step"
    )
    assert result.n_train == 12 and result.n_val == 4
    assert result.best_val_loss < result.initial_val_loss
    assert result.history[-1]["loss"] < result.history[0]["loss"]

    result.model.save_pretrained(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    with peft_quiet():
        reloaded = PeftModel.from_pretrained(copy.deepcopy(loaded.model), str(tmp_path / "adapter")).eval()
    ids = torch.tensor([prompt_ids(loaded.tokenizer, pairs[0][0])])
    with torch.no_grad():
        a = result.model(input_ids=ids).logits
        b = reloaded(input_ids=ids).logits
        base = loaded.model(input_ids=ids).logits
    assert torch.equal(a, b)
    assert not torch.allclose(a, base)  # the adapter does change the model
    for k, v in before.items():  # and the shared base model was left alone
        assert torch.equal(loaded.model.state_dict()[k], v)


TRAIN_SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)  # as the test's own runs: the thread count changes the rounding
from pathlib import Path
from advisor.backends.hf import load_base
from baselines.lora_train import TrainConfig, train_lora
cfg = TrainConfig.model_validate_json(sys.argv[1])
pairs = json.loads(Path(sys.argv[2]).read_text())
loaded = load_base(sys.argv[3])  # the converted folder
train_lora(loaded.model, loaded.tokenizer, pairs, cfg, Path(sys.argv[4]))
"""


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint_and_matches_an_unbroken_run(loaded, pairs, tmp_path):
    import torch
    from peft import get_peft_model_state_dict

    cfg = TrainConfig(**TINY, max_steps=8, epochs=4, eval_every=100, checkpoint_every=2)
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            TRAIN_SCRIPT,
            cfg.model_dump_json(),
            str(tmp_path / "pairs.json"),
            str(loaded.path),
            str(run),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while latest_checkpoint(run) is None:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    ckpt = latest_checkpoint(run)
    saved_step = json.loads((ckpt / "state.json").read_text())["step"]
    assert 2 <= saved_step < 8

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the killed run: a run on another thread count rounds differently
    try:
        resumed = train_lora(copy.deepcopy(loaded.model), loaded.tokenizer, pairs, cfg, run)
        unbroken = train_lora(copy.deepcopy(loaded.model), loaded.tokenizer, pairs, cfg, tmp_path / "unbroken")
    finally:
        torch.set_num_threads(threads)
    assert resumed.resumed_from == saved_step
    assert resumed.steps == 8 and [h["step"] for h in resumed.history] == list(range(1, 9))

    assert unbroken.resumed_from is None
    a, b = get_peft_model_state_dict(resumed.model), get_peft_model_state_dict(unbroken.model)
    assert a.keys() == b.keys()
    for k in a:  # same seed, same data: resuming changes nothing
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_shared_prefix_gives_the_same_loss_and_gradients(loaded, pairs):
    import torch

    import baselines.lora_train as lt

    rows = [encode(loaded.tokenizer, m, a, 64) for m, a in pairs[:4]]
    ids, mask, labels = lt.collate(rows, loaded.tokenizer.pad_token_id, "cpu")
    assert lt.shared_prefix(ids, labels) >= 16
    model = lt.wrap_lora(copy.deepcopy(loaded.model), TrainConfig(dropout=0.0))
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B starts at zero: give the adapter a say in the gradients
            torch.nn.init.normal_(p, std=0.02)
    results = []
    for prefix in (lt.shared_prefix, lambda *a, **k: 0):
        lt_prefix, lt.shared_prefix = lt.shared_prefix, prefix
        try:
            loss, n = lt.answer_loss(model, ids, mask, labels)
        finally:
            lt.shared_prefix = lt_prefix
        loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
        model.zero_grad()
        results.append((loss.item(), n, grads))
    (l1, n1, g1), (l2, n2, g2) = results
    assert n1 == n2 and l1 == pytest.approx(l2, rel=1e-5)
    for k in g1:
        torch.testing.assert_close(g1[k], g2[k], rtol=1e-3, atol=1e-4)
