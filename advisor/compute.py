"""How a local model computes on this machine: its precision and its CPU threads, both measured.

Precision (`choose_precision`). On a GPU, bf16. On a CPU it depends on the CPU, and CPUs differ
between machines of the same kind: with AMX tiles a bf16 matmul at SmolLM2's shapes ran 6.6x
fp32 here, while on a CPU with avx512_bf16 but no AMX, bf16 was slower than fp32 everywhere
(issue 29: 0.55-0.75x). So bf16 is never assumed: on a CPU with native bf16 instructions
(avx512_bf16 or amx_bf16), a short measurement on this model and the task's own train items
(never eval) times fp32 against bf16 on the project's own scoring path (`option_logprobs`) and,
when the run trains, on LoRA steps (`baselines.lora_train.answer_loss` + backward + AdamW), and
keeps bf16 for each only when it is at least SPEEDUP_MIN faster *and* keeps the decisions: the
per-token log-probabilities within LOGP_MEDIAN_TOL of fp32's (median over the probe's tokens),
the same label chosen on at least AGREE_MIN of the probe items (classification), and training
losses within LOSS_TOL of fp32's. The choice is cached per machine, model, device, probe and
method (as the compute price is: advisor.costs), and recorded in every run (results.json
`compute`). A forced `compute.precision` skips the measurement.

Threads (`ThreadChoice`). On a CPU shared with other work, torch's default (one thread per core)
can be many times slower than one thread: the threads wait on each other while the cores are
busy elsewhere (issue 29: a LoRA step took 21-67 s forward with 2 threads at load 10-15, 4 s with
one). So the thread count is measured, not assumed: before a stage (scoring a lever's items,
training) and again every RECHECK_S seconds within it, a short probe times a forward pass with
one thread and with one per core, interleaved, and the faster is kept. On a quiet machine that
is what is fastest there. Every choice is recorded.

OpenMP's wait policy is left as OpenMP sets it: measured here (bench/bench_threads.py, quiet
2-core machine, bf16), OMP_WAIT_POLICY=PASSIVE made two threads 0.63x as fast on LoRA steps and
0.66x on scoring, and on a loaded machine the probe above picks one thread, where the policy has
no threads to put to sleep. The policy in force is recorded with the thread choices.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Thresholds of the precision choice. Stated judgements, not fitted to any result:
SPEEDUP_MIN = 1.2  # bf16 must save a sixth of the time; timings on a shared machine vary by about 10%
LOGP_MEDIAN_TOL = 0.10  # nats: median |log p(bf16) - log p(fp32)| over the probe's option tokens
AGREE_MIN = 0.90  # share of probe items where bf16 picks fp32's label (near-ties may flip)
LOSS_TOL = 0.05  # mean relative difference of the training losses over the probe's steps
PROBE_ITEMS = 64  # train items the scoring probe scores in each precision (a label flip is 1.6%)
PROBE_STEPS = 3  # timed LoRA steps in each precision (after one warm-up step)
PRECISION_METHOD = "precision-probe/v1"  # part of the cache key: a new method measures again
RECHECK_S = 60.0  # seconds between thread-count checks within a stage
PRECISIONS = ("fp32", "bf16")
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")
CPU_FLAGS_SHOWN = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_flags() -> list[str]:
    """The CPU flags that decide precision (CPU_FLAGS_SHOWN present in /proc/cpuinfo); [] elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in CPU_FLAGS_SHOWN if f in present]
    return []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- precision ----------------------------------------------------------------------------------


@dataclass
class Precision:
    """The precision a local model computes in for one use (`use`: scoring or training), and why.

    `precision`: "fp32" or "bf16". `why`: gpu | no_native_bf16 | measured | forced | unmeasured.
    `measured`: the probe's figures (speed-up = fp32 seconds / bf16 seconds; fidelity)."""

    use: str
    precision: str
    why: str
    reason: str
    device: str
    cpu: str = ""
    cpu_flags: list[str] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)
    measured_at: str | None = None
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PRECISION_ENV = "ADVISE_PRECISION"


def environment_precision() -> str:
    """`ADVISE_PRECISION` (auto | fp32 | bf16): a machine-wide setting that a task's `compute.precision:
    auto` follows (say, fp32 everywhere for figures that must match across CPUs); "auto" when unset.
    Raises InputError on another value."""
    from advisor.errors import InputError

    value = os.environ.get(PRECISION_ENV, "auto").strip() or "auto"
    if value not in ("auto", *PRECISIONS):
        raise InputError(f"{PRECISION_ENV}={value!r} in the environment: use auto, fp32 or bf16")
    return value


def choose_precision(loaded: Any, use: str, setting: str = "auto", *, probe: list[Any] | None = None,
                     cache_dir: Path | None = None, on_status: Callable[[str], Any] | None = None) -> Precision:
    """The precision `loaded` (advisor.backends.hf.LoadedModel) computes in for `use` on this machine.

    `use`: "scoring" (scoring options and generating) or "training" (LoRA's base weights).
    `setting`: auto | fp32 | bf16 (task.yaml `compute.precision`). `probe`: for scoring, (chat
    messages, options) pairs: the task's train items with its labels, or with their gold answer
    as the one option for a generation task; for training, (messages, answer) pairs. Cached in
    `cache_dir/compute_precision.json` per machine, model, device, use, probe and method (delete
    the file to measure again).
    """
    from contextlib import nullcontext

    from advisor.data import stable_hash

    device = loaded.device
    flags = cpu_flags() if device == "cpu" else []
    base = {"use": use, "device": device, "cpu": cpu_model() if device == "cpu" else "", "cpu_flags": flags}
    if setting in PRECISIONS:
        return Precision(precision=setting, why="forced",
                         reason=f"compute.precision: {setting} (task.yaml or --set)", **base)
    machine_wide = environment_precision()
    if machine_wide in PRECISIONS:
        return Precision(precision=machine_wide, why="forced",
                         reason=f"{PRECISION_ENV}={machine_wide}, set in the environment", **base)
    if device == "cuda":
        return Precision(precision="bf16", why="gpu", reason="a GPU: bf16", **base)
    if not any(f in flags for f in NATIVE_BF16):
        return Precision(precision="fp32", why="no_native_bf16", reason="this CPU has no native bf16 "
                         "instructions (avx512_bf16, amx_bf16): bf16 would be emulated, fp32 kept", **base)
    if not probe:
        return Precision(precision="fp32", why="unmeasured", reason="no train items to measure bf16 on: fp32 kept",
                         **base)
    machine = [platform.node(), platform.machine(), cpu_model(), cores(), flags]
    key = stable_hash([machine, loaded.identity, device, use, probe, PRECISION_METHOD])[:16]
    path = cache_dir / "compute_precision.json" if cache_dir else None
    cached = read_machine_cache(path) if path is not None else {}
    if key in cached:
        return Precision(**{**cached[key], "cached": True})
    say = on_status or (lambda text: nullcontext())
    with say(f"measuring fp32 against bf16 for {use} on this CPU (once per machine, model and task)"):
        measured = measure_scoring(loaded, probe) if use == "scoring" else measure_training(loaded, probe)
    precision, reason = (_decide_scoring if use == "scoring" else _decide_training)(measured)
    choice = Precision(precision=precision, why="measured", reason=reason, measured=measured,
                       measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **base)
    if path is not None:
        cached[key] = {k: v for k, v in choice.as_dict().items() if k != "cached"}
        write_machine_cache(path, cached)
    return choice


def read_machine_cache(path: Path) -> dict[str, Any]:
    """A per-machine measurement cache (compute_precision.json, compute_calibration.json): key -> entry;
    {} when missing or unreadable (the measurement is then made again)."""
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_machine_cache(path: Path, cached: dict[str, Any]) -> None:
    """Write a measurement cache atomically (a temp file per process, then renamed)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(cached, indent=2))
    tmp.replace(path)


def _decide_scoring(m: dict[str, Any]) -> tuple[str, str]:
    speed, med, agree = m["scoring_speedup"], m["logp_median_abs_diff"], m.get("label_agreement")
    figures = (f"bf16 ran {speed:.2f}x as fast as fp32, median |d log p| {med:.3f} nats"
               + (f", same label on {agree:.0%} of {m['probe_items']} train items" if agree is not None else ""))
    if speed < SPEEDUP_MIN:
        return "fp32", f"fp32 ({figures}: under the {SPEEDUP_MIN}x that would pay for the risk)"
    if med > LOGP_MEDIAN_TOL or (agree is not None and agree < AGREE_MIN):
        return "fp32", f"fp32 ({figures}: outside the tolerance {LOGP_MEDIAN_TOL} nats / {AGREE_MIN:.0%})"
    return "bf16", f"bf16 ({figures})"


def _decide_training(m: dict[str, Any]) -> tuple[str, str]:
    speed, loss = m["training_speedup"], m["loss_rel_diff"]
    figures = f"bf16 base weights {speed:.2f}x fp32's steps/s, losses within {loss:.1%} of fp32's"
    if speed < SPEEDUP_MIN:
        return "fp32", f"fp32 ({figures}: under {SPEEDUP_MIN}x)"
    if loss > LOSS_TOL:
        return "fp32", f"fp32 ({figures}: outside {LOSS_TOL:.0%})"
    return "bf16", f"bf16 ({figures}; the LoRA weights stay fp32)"


def _best_of(fns: dict[str, Callable[[], Any]], rounds: int = 2) -> tuple[dict[str, float], dict[str, Any]]:
    """Fastest wall seconds of each function over `rounds` interleaved rounds, and its last result."""
    best: dict[str, float] = {}
    out: dict[str, Any] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            out[name] = fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    return best, out


def measure_scoring(loaded: Any, probes: list[tuple[list[dict[str, str]], list[str]]]) -> dict[str, Any]:
    """fp32 vs bf16 on `option_logprobs` over the probes: speed-up and fidelity."""
    import copy

    from advisor.backends.hf import HFBackend, to_precision

    fp32 = HFBackend(loaded)
    bf16 = HFBackend(loaded, model=to_precision(copy.deepcopy(loaded.model), "bf16").eval())
    prompts = [fp32.prompt_ids(m) for m, _ in probes]
    options = [list(o) for _, o in probes]
    for b in (fp32, bf16):  # warm-up: first calls allocate and pick kernels
        b.option_logprobs(prompts[:4], options[:4], 8, report=False)
    seconds, out = _best_of({p: (lambda b=b: b.option_logprobs(prompts, options, 8, report=False)[0])
                             for p, b in (("fp32", fp32), ("bf16", bf16))})
    ref, low = out["fp32"], out["bf16"]
    diffs = [abs(a - b) for r, s in zip(ref, low) for o, q in zip(r, s) for a, b in zip(o, q)]
    multi = [i for i, o in enumerate(options) if len(o) > 1]
    agree = None
    if multi:
        pick = [lambda r, i=i: max(range(len(r[i])), key=lambda j: sum(r[i][j])) for i in multi]
        agree = sum(p(ref) == p(low) for p in pick) / len(multi)
    del bf16
    return {
        "probe_items": len(probes),
        "scoring_seconds": seconds,
        "scoring_speedup": seconds["fp32"] / max(seconds["bf16"], 1e-9),
        "logp_median_abs_diff": statistics.median(diffs) if diffs else 0.0,
        "logp_p95_abs_diff": sorted(diffs)[int(0.95 * (len(diffs) - 1))] if diffs else 0.0,
        "label_agreement": agree,
    }


def measure_training(loaded: Any, pairs: list[tuple[list[dict[str, str]], str]]) -> dict[str, Any]:
    """fp32 vs bf16 base weights on PROBE_STEPS LoRA steps (batches of 8, same init and data)."""
    import copy

    import torch

    from advisor.backends.hf import to_precision
    from baselines.lora_train import TrainConfig, answer_loss, collate, encode, wrap_lora

    tok = loaded.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = [encode(tok, m, a, 512) for m, a in pairs[: 8 * (PROBE_STEPS + 1)]]
    batches = [rows[i : i + 8] for i in range(0, len(rows), 8)]
    result: dict[str, dict[str, Any]] = {}
    for name in PRECISIONS:
        model = wrap_lora(to_precision(copy.deepcopy(loaded.model), name), TrainConfig())
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=TrainConfig().learning_rate)
        times, losses = [], []
        for batch in batches:
            start = time.perf_counter()
            loss, n = answer_loss(model, *collate(batch, pad, loaded.device))
            (loss / max(n, 1)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
            losses.append(float(loss.detach()) / max(n, 1))
        result[name] = {"step_seconds": min(times[1:]) if len(times) > 1 else times[0], "losses": losses}
        del model, opt
    # Mean over the steps: a single step's loss is noisy once the two runs' weights have moved apart.
    rel = [abs(b - a) / max(abs(a), 1e-9) for a, b in zip(result["fp32"]["losses"], result["bf16"]["losses"])]
    return {
        "training_step_seconds": {k: v["step_seconds"] for k, v in result.items()},
        "training_speedup": result["fp32"]["step_seconds"] / max(result["bf16"]["step_seconds"], 1e-9),
        "training_losses": {k: v["losses"] for k, v in result.items()},
        "loss_rel_diff": sum(rel) / len(rel) if rel else 0.0,
    }


# -- threads ------------------------------------------------------------------------------------


class ThreadChoice:
    """Chooses torch's CPU thread count by measurement, per stage, and keeps every choice.

    `setting`: "auto" (measure) or a number (forced; task.yaml `compute.threads`).
    `check(stage, probe)`: times `probe` (a short forward pass) with one thread and with one per
    core, interleaved, keeps the faster, sets it, and records it; called again within RECHECK_S
    of the last check of the same stage it does nothing. A no-op off the CPU.
    """

    def __init__(self, setting: str | int = "auto", device: str = "cpu") -> None:
        self.setting = setting
        self.device = device
        self.cores = cores()
        self.choices: list[dict[str, Any]] = []
        self._last: dict[str, float] = {}
        self._paused = 0
        self._initial: int | None = None  # torch's thread count before the first check changed it

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No checks inside (the compute-price calibration times one thread on purpose)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def check(self, stage: str, probe: Callable[[], Any]) -> int | None:
        import torch

        if self.device != "cpu" or self._paused:
            return None
        if self.setting != "auto":
            n = int(self.setting)
            if torch.get_num_threads() != n:
                self._set(n)
            if not self.choices:  # recorded once: it never changes
                self.choices.append({"stage": stage, "threads": n, "why": "forced"})
            return n
        now = time.monotonic()
        if self.cores < 2 or now - self._last.get(stage, -1e18) < RECHECK_S:
            return torch.get_num_threads()
        self._last[stage] = now
        candidates = {"1": 1, str(self.cores): self.cores}
        seconds: dict[str, float] = {}
        for _ in range(2):
            for name, n in candidates.items():
                self._set(n)
                start = time.perf_counter()
                probe()
                seconds[name] = min(seconds.get(name, float("inf")), time.perf_counter() - start)
        # On a tie (within 5%) the machine's default, one thread per core.
        n = 1 if seconds["1"] < 0.95 * seconds[str(self.cores)] else self.cores
        self._set(n)
        self.choices.append({"stage": stage, "threads": n, "why": "measured",
                             "probe_seconds": {k: round(v, 4) for k, v in seconds.items()},
                             "load_average": round(os.getloadavg()[0], 2), "at": time.strftime("%H:%M:%S")})
        return n

    def _set(self, n: int) -> None:
        import torch

        if self._initial is None:
            self._initial = torch.get_num_threads()
        torch.set_num_threads(n)

    def restore(self) -> None:
        """torch's thread count as it was before this choice first changed it (a run leaves the
        process as it found it: the thread count changes a computation's rounding)."""
        import torch

        if self._initial is not None:
            torch.set_num_threads(self._initial)
            self._initial = None

    def summary(self) -> dict[str, Any]:
        """results.json `compute.threads`: the setting, the cores, and the choices made."""
        counts: dict[str, int] = {}
        for c in self.choices:
            counts[str(c["threads"])] = counts.get(str(c["threads"]), 0) + 1
        return {"setting": self.setting, "cores": self.cores, "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "chosen_counts": counts, "choices": self.choices[-50:]}


def scoring_probe(task: Any) -> list[tuple[list[dict[str, str]], list[str]]]:
    """The scoring probe of `task`: its first PROBE_ITEMS train items (never eval) as the zero-shot
    prompt asks them, with the task's labels as options, or, for a task without labels, the item's
    gold answer as its one option (teacher-forced: the per-token log-probabilities are compared)."""
    from advisor.data import load_examples
    from advisor.prompting import answer_text, render_messages

    try:
        train = load_examples(task, task.data_path("train"), split="train")[:PROBE_ITEMS]
    except Exception:  # noqa: BLE001 - a bad train file is reported by the run itself, in its own words
        return []
    labels = list(task.labels or []) if task.kind == "classification" else []
    return [(render_messages(task, ex), labels or [answer_text(task, ex.output)]) for ex in train]


def setup_hf(task: Any, loaded: Any, cache_dir: Path | None,
             on_status: Callable[[str], Any] | None = None) -> tuple[Precision, ThreadChoice]:
    """The scoring precision and the run's ThreadChoice for a local model of `task`."""
    from advisor.backends.hf import forward_probe

    threads = ThreadChoice(task.compute.threads, loaded.device)
    threads.check("start", forward_probe(loaded.model, loaded.device))  # the probe below runs at the faster
    precision = choose_precision(loaded, "scoring", task.compute.precision, probe=scoring_probe(task),
                                 cache_dir=cache_dir, on_status=on_status)
    return precision, threads
