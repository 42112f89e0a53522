"""The TREC ladder the old way and the new way on this machine: the ratio of wall times.

    python bench/bench_ladder.py [--task trec] [--limit N] [--first new|old] [--keep DIR]

Runs `advise run` on the sample task's ladder (prompt, prompt-few-shot, rag, lora; every eval item
unless --limit) twice, one after the other, each in a fresh process with a fresh cache and a fresh
run folder (the converted embedded model is copied into each cache: converting it is setup, not the
ladder), so every answer, index, adapter, compute calibration and precision measurement is computed
again:

  old  today's path before issue 29: fp32, torch's thread count (one per core), LoRA on the prompt
       as written: `--set compute.precision=fp32 --set compute.threads=<cores>
       --set lever_options.lora.prompt_form=as_written`
  new  the defaults: precision and threads measured (advisor.compute), LoRA's prompt form chosen
       on its validation split.

Prints each run's wall time, the machine's load average before and after each (a shared machine
makes both slower; compare ratios, not seconds), the CPU and its flags, what the new run chose
(precision, threads, LoRA prompt form) and each lever's score and state in both runs; the last
line is `new/old wall time: 0.NN`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor import compute  # noqa: E402
from advisor.backends.hf import default_cache_dir  # noqa: E402

LEVERS = ("prompt", "prompt-few-shot", "rag", "lora")


def run_ladder(way: str, task: Path, limit: int | None, work: Path) -> dict:
    cache, out = work / f"cache-{way}", work / f"run-{way}"
    models = default_cache_dir() / "models"
    cache.mkdir(parents=True)
    if models.is_dir():
        shutil.copytree(models, cache / "models")
    cmd = [str(Path(sys.executable).parent / "advise"), "run", str(task), "--out", str(out), "--quiet"]
    for lever in LEVERS:
        cmd += ["--lever", lever]
    if limit:
        cmd += ["--limit", str(limit)]
    if way == "old":
        cmd += ["--set", "compute.precision=fp32", "--set", f"compute.threads={compute.cores()}",
                "--set", "lever_options.lora.prompt_form=as_written"]
    env = {**os.environ, "ADVISE_CACHE": str(cache)}
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # each way chooses its own threads
        env.pop(k, None)
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{way} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    record = json.loads((out / "results.json").read_text())
    return {"wall": wall, "load": (load0, os.getloadavg()[0]), "record": record}


def summary(record: dict) -> dict[str, str]:
    metric = record["target"]["metric"]
    out = {}
    for lv in record["levers"]:
        value = ((lv.get("metrics") or {}).get(metric) or {}).get("value")
        state = (lv.get("verdict") or {}).get("state")
        out[lv["name"]] = f"{value:.3f} {state}" if isinstance(value, float) else f"{value} {state}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="trec")
    ap.add_argument("--limit", type=int, default=None, help="eval items (default: all)")
    ap.add_argument("--first", choices=["old", "new"], default="old")
    ap.add_argument("--keep", type=Path, default=None, help="keep the caches and run folders here")
    args = ap.parse_args()
    task = ROOT / "sample_tasks" / args.task / "task.yaml"
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-ladder-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {compute.cpu_model()}; flags: {' '.join(compute.cpu_flags())}; {compute.cores()} cores")
    order = ["old", "new"] if args.first == "old" else ["new", "old"]
    runs = {}
    try:
        for way in order:
            runs[way] = run_ladder(way, task, args.limit, work)
            r = runs[way]
            print(f"{way}: {r['wall']:.0f} s (load average {r['load'][0]:.1f} before, {r['load'][1]:.1f} after)",
                  flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    new = runs["new"]["record"]
    for ident, info in ((new.get("compute") or {}).get("models") or {}).items():
        sc = info.get("scoring") or {}
        th = info.get("threads") or {}
        print(f"new run, {ident}: scoring in {sc.get('precision')} ({sc.get('reason')}); threads chosen "
              f"{th.get('chosen_counts')}")
    for lv in new["levers"]:
        info = (lv.get("artifact") or {}).get("info") or {}
        if "training_precision" in info:
            print(f"new run, {lv['name']}: trained in {info['training_precision']}; "
                  f"prompt form {(info.get('prompt_form') or {}).get('chosen')}")
    old_s, new_s = summary(runs["old"]["record"]), summary(new)
    print("lever: old | new (metric, state)")
    for name in old_s:
        print(f"  {name}: {old_s[name]} | {new_s.get(name)}")
    verdict = {w: f"{r['record']['verdict']['outcome']} ({r['record']['verdict']['lever']})" for w, r in runs.items()}
    print(f"verdict old: {verdict['old']}; new: {verdict['new']}")
    print(f"new/old wall time: {runs['new']['wall'] / runs['old']['wall']:.2f}")


if __name__ == "__main__":
    main()
