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
line is `new/old wall time: 0.NN`. Before it, where each run's time went (from its results.json:
each lever's setup seconds, LoRA's training seconds, eval seconds = measured seconds per query x
the queries computed; the rest is loading, probes, calibration, reports) and the floor the ratio
cannot go below while LoRA training takes what it took in the new run (training seconds / old wall).

`--from DIR` prints the same from a folder an earlier `--keep DIR` kept, without running anything
(wall times then come from each run's store: the run's own start and finish, without the process
start).
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
from advisor.report.sections import compute_lines  # noqa: E402

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


def breakdown(record: dict) -> dict[str, float]:
    """Seconds per stage of one run, from its results.json (costs.LeverCost: setup_seconds,
    compute_s_per_query; a LoRA row's artifact.info.train_seconds)."""
    out: dict[str, float] = {}
    for lv in record["levers"]:
        cost = lv.get("cost") or {}
        train = train_seconds(lv)
        setup = cost.get("setup_seconds") or 0.0
        if train:
            out[f"{lv['name']} training"] = train
        out[f"{lv['name']} setup" + (" besides training" if train else "")] = max(setup - train, 0.0)
        n = lv.get("computed_predictions") or 0
        out[f"{lv['name']} eval"] = (cost.get("compute_s_per_query") or 0.0) * n
    return out


def train_seconds(lever: dict) -> float:
    """A row's LoRA training seconds (artifact.info.train_seconds), 0 for a row that trains nothing."""
    return ((lever.get("artifact") or {}).get("info") or {}).get("train_seconds") or 0.0


def print_breakdown(way: str, record: dict, wall: float, timed: str) -> None:
    parts = breakdown(record)
    rest = wall - sum(parts.values())
    shown = ", ".join(f"{k} {v:.0f}" for k, v in parts.items() if v >= 0.5)
    print(f"{way} run, where {wall:.0f} s went (s): {shown}, the rest {rest:.0f} "
          f"({'process start, ' if timed == 'process' else ''}model load, probes, calibration, reports)")


def store_wall(run_dir: Path) -> float:
    """A kept run's wall time from its store (the run's start to its finish)."""
    import sqlite3

    with sqlite3.connect(run_dir / "advise.sqlite") as db:
        started, finished = db.execute("SELECT started, finished FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return finished - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="trec")
    ap.add_argument("--limit", type=int, default=None, help="eval items (default: all)")
    ap.add_argument("--first", choices=["old", "new"], default="old")
    ap.add_argument("--keep", type=Path, default=None, help="keep the caches and run folders here")
    ap.add_argument("--from", dest="source", type=Path, default=None,
                    help="print the comparison of the runs kept in this folder (by --keep); run nothing")
    args = ap.parse_args()
    if args.source:
        runs = {w: {"wall": store_wall(args.source / f"run-{w}"),
                    "record": json.loads((args.source / f"run-{w}" / "results.json").read_text())}
                for w in ("old", "new")}
        print(f"runs kept in {args.source} (wall times from their stores: without the process start)")
        report(runs, timed="store")
        return
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
    report(runs, timed="process")


def report(runs: dict[str, dict], timed: str) -> None:
    """Prints the comparison; `timed`: "process" (the bench timed each process) or "store" (--from)."""
    new = runs["new"]["record"]
    for line in compute_lines(new):  # the run's own terminal line: precision and why, threads chosen
        print(f"new run: {line}")
    for lv in new["levers"]:
        info = (lv.get("artifact") or {}).get("info") or {}
        if "training_precision" in info:
            print(f"new run, {lv['name']}: trained in {info['training_precision']}; "
                  f"prompt form {(info.get('prompt_form') or {}).get('chosen')}")
    old_s, new_s = summary(runs["old"]["record"]), summary(new)
    print("lever: old | new (metric, state; the new way also chooses LoRA's prompt form, so scores may differ)")
    for name in old_s:
        print(f"  {name}: {old_s[name]} | {new_s.get(name)}")
    verdict = {w: r["record"]["verdict"]["outcome"] + (f" {r['record']['verdict']['lever']}" if r["record"]["verdict"].get("lever")
                                                         else "") for w, r in runs.items()}
    print(f"verdict old: {verdict['old']}; new: {verdict['new']}")
    for way in ("old", "new"):
        print_breakdown(way, runs[way]["record"], runs[way]["wall"], timed)
    train = sum(train_seconds(lv) for lv in new["levers"])
    if train:
        print(f"floor: LoRA training alone took {train:.0f} s in the new run, {train / runs['old']['wall']:.2f} "
              "of the old run's wall time: the ratio below cannot go under that unless training gets faster")
    print(f"new/old wall time: {runs['new']['wall'] / runs['old']['wall']:.2f}")


if __name__ == "__main__":
    main()
