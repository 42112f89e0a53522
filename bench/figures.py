"""The sample tasks' figures, from one script: README's numbers are rendered from files this writes.

`make figures` (`python bench/figures.py`) runs every sample task's full ladder (sample_tasks/trec,
countries, addresses; each task's own `levers:`) on the embedded model through the real CLI path, one
`python -m advisor.cli run TASK --out runs/figures/<task> --quiet` subprocess per task, so a rerun
reuses the run folder's cache and recomputes nothing. From each run's results.json it writes
`sample_tasks/<task>/figures.json`: per lever the target metric with its interval, the state (meets /
fails / undecided), the label-ranking method and why, the chosen prompt wording (a LoRA row: its prompt
form, "template only" / "as written"), n_eval and the
predictions computed in this run; per task the recommendation, git commit and dirty flag, wall
seconds of this invocation, the date and the exact command. It then rewrites README.md's marker
blocks (`<!-- figures:<task> -->` ... `<!-- /figures:<task> -->`) from those files; nothing in a
block is typed by hand, and tests/test_figures.py fails when a block differs from its file.

Options: `--task NAME` (repeatable) runs a subset; `--limit N` and `--set KEY=VALUE` (repeatable; e.g.
`lever_options.lora.max_steps=10` for a quick check) pass through to `advise run` and are recorded: the
file then says `"limit": N` / `"sets": [...]` and README's block says, above its table, that it is a
limited run and not the task's figures. A limited run never overwrites a full figures file (`--force`
does); a full run always overwrites. `--readme` only
re-renders README's blocks from the committed files (no model, seconds).

How long (measured on 2 CPU cores shared with other jobs, load 8-10, unless said otherwise): the TREC
ladder with `--limit 8` and LoRA cut to 2 steps took 21 minutes, mostly loading the model, embedding
TREC's 5,080 train examples for rag and scoring the dev split's wordings; the slice's 12 LoRA steps of 2
examples trained in 8 minutes (40 s a step). Earlier runs: prompt, few-shot and rag on TREC's 300 items
took about 40 minutes on a shared machine, where 200 LoRA steps were projected at almost four hours; the
previous version's whole TREC ladder took 15 minutes on a quiet 2-core machine. countries (150 eval
items, two LoRA trainings) and addresses (200 items, answers up to 96 tokens, one LoRA) are of the same
order. Estimate, not measured end to end: `make figures` takes one to three hours on a quiet 2-core
machine and many on a busy one; a rerun with nothing changed reuses every answer and adapter.

The CI slice (`make figures-ci`, `--slice`): TREC's prompt, prompt-few-shot and lora levers on the
first 40 eval items, the dev split for choosing wordings capped at 20 items, and the first 200 train
lines only (written to the run folder and passed as `--set data.train=...`), LoRA cut to 12 steps of
2 examples with no validation split (so no early stopping), and no latency probe. `--slice` writes sample_tasks/trec/figures_ci.json;
tests/test_figures.py (marked slow) reruns the slice in a fresh folder and cache and fails, naming
lever, recorded value, new value and tolerance, when a lever's target metric moves by more than
SLICE_TOLERANCE_ITEMS items of the slice, or its state or ranking method changes. Measured: the test took
31 minutes on 2 cores shared with other jobs (load 8-13), 12.5 CPU-minutes with a fresh model cache, so
an estimated 6 to 12 minutes on a quiet 2-core machine; a rerun in a fresh folder and cache gave
figures identical to the recorded file (every value, interval, state and wording). An intended change
lands by regenerating the file (`make figures-ci`) and committing it: the commit shows the diff.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from advisor.record import load_record
from advisor.report.fmt import prompt_form_label

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_tasks"
README = ROOT / "README.md"
RUNS = ROOT / "runs" / "figures"
TASKS = ("trec", "countries", "addresses", "support-replies")

# The CI slice: fixed, small, deterministic (seeded dev split, seeded few-shot sample, seeded LoRA).
SLICE_TASK = "trec"
SLICE_FILE = SAMPLES / SLICE_TASK / "figures_ci.json"
SLICE_LIMIT = 40
SLICE_TRAIN_LINES = 200
SLICE_LEVERS = ("prompt", "prompt-few-shot", "lora")
SLICE_SETS = ("prompt.dev_size=20", "lever_options.lora.max_steps=12", "lever_options.lora.batch_size=2",
              "lever_options.lora.val_fraction=0")
SLICE_ARGS = ("--latency-probe", "0")
# A figure may move by this many items of the slice before the check fails: the same code on another
# CPU can sum floats in another order, and that flips a near-tie between two labels (or a LoRA step's
# rounding) on an item or two; a real change of scoring or training moves more than that.
SLICE_TOLERANCE_ITEMS = 2


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def advise_argv(task_file: Path, out: Path, *, limit: int | None = None, levers: tuple[str, ...] = (),
                sets: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> list[str]:
    """`advise run` as this script calls it (paths relative to the repository root, where it runs)."""
    argv = ["advise", "run", _rel(task_file), "--out", _rel(out), "--quiet"]
    argv += [a for lv in levers for a in ("--lever", lv)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    argv += [a for s in sets for a in ("--set", s)]
    return argv + list(extra)


def run_advise(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Run `advise run` (argv as advise_argv gives it) from this checkout's code; returns wall seconds."""
    cmd = [sys.executable, "-m", "advisor.cli", *argv[1:]]
    # The figures are computed in fp32 on every machine (ADVISE_PRECISION, advisor.compute): bf16 is
    # picked only on some CPUs, and README's figures must be the same wherever they are regenerated.
    # bench/bench_ladder.py shows that the measured default reaches the same states and verdict.
    env = {**os.environ, **(env or {})}
    env.setdefault("ADVISE_PRECISION", "fp32")
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"`{shlex.join(argv)}` exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return wall


def lever_row(lv: dict[str, Any], metric: str) -> dict[str, Any]:
    """One figures.json row from results.json's levers[i]."""
    m = (lv.get("metrics") or {}).get(metric) or {}
    choice = (lv.get("details") or {}).get("prompt_choice") or {}
    return {
        "name": lv["name"],
        "metric": metric,
        "value": m.get("value"),
        "ci_low": m.get("ci_low"),
        "ci_high": m.get("ci_high"),
        "state": lv["verdict"]["state"],
        "option_ranking": lv.get("option_ranking"),  # {"method", "natural", "why", "held_out"}, or absent
        "wording": choice.get("chosen") or prompt_form_label(lv),  # a LoRA row: its prompt form
        "n_eval": lv.get("n_eval"),
        "computed_predictions": lv.get("computed_predictions"),
    }


def check_rates(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per lever, each check metric's pass rate (advisor.checks; {} for a task without checks)."""
    from advisor.report.checks_view import check_columns

    cols = check_columns(results)
    return {lv["name"]: {c: ((lv.get("metrics") or {}).get(c) or {}).get("value") for c in cols}
            for lv in results["levers"]} if cols else {}


def figures_from_results(results: dict[str, Any], *, folder: str, command: list[str], wall_s: float,
                         limit: int | None, sets: tuple[str, ...] = (), slice_: bool = False) -> dict[str, Any]:
    metric = results["target"]["metric"]
    prov = results.get("provenance") or {}
    git = prov.get("git") or {}
    rec = results["verdict"]
    return {
        "task": results["task"],
        "folder": folder,
        "limit": limit,
        "sets": list(sets),
        "slice": slice_,
        "target": {"metric": metric, "threshold": results["target"]["threshold"]},
        "levers": [lever_row(lv, metric) for lv in results["levers"]],
        "checks": check_rates(results),
        "recommendation": {"lever": rec.get("lever"), "outcome": rec["outcome"], "reason": rec.get("reason")},
        "warnings": list((results.get("scoring") or {}).get("warnings") or []),
        "git": {"commit": git.get("commit"), "dirty": git.get("dirty")},
        "precision": sorted({str((m.get("scoring") or {}).get("precision"))
                             for m in ((results.get("compute") or {}).get("models") or {}).values()}),
        "wall_s": round(wall_s, 1),
        "date": prov.get("created"),
        "command": shlex.join(command),
        "argv": command,
    }


def run_task(name: str, *, limit: int | None, sets: tuple[str, ...] = (), runs: Path = RUNS) -> dict[str, Any]:
    task_file = SAMPLES / name / "task.yaml"
    out = runs / name
    argv = advise_argv(task_file, out, limit=limit, sets=sets)
    print(f"{name}: {shlex.join(argv)}", flush=True)
    wall = run_advise(argv)
    results = load_record(out).to_json()  # the one loader: validated, older files upgraded
    return figures_from_results(results, folder=name, command=argv, wall_s=wall, limit=limit, sets=sets)


def run_slice(runs: Path = RUNS, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The CI slice (see the module docstring) in runs/<trec>-slice; returns its figures."""
    out = runs / f"{SLICE_TASK}-slice"
    out.mkdir(parents=True, exist_ok=True)
    train = out / f"train-first{SLICE_TRAIN_LINES}.jsonl"
    lines = (SAMPLES / SLICE_TASK / "data" / "train.jsonl").read_text().splitlines()[:SLICE_TRAIN_LINES]
    train.write_text("\n".join(lines) + "\n")
    argv = advise_argv(SAMPLES / SLICE_TASK / "task.yaml", out, limit=SLICE_LIMIT, levers=SLICE_LEVERS,
                       sets=(f"data.train={train.resolve()}", *SLICE_SETS), extra=SLICE_ARGS)
    print(f"slice: {shlex.join(argv)}", flush=True)
    wall = run_advise(argv, env)
    results = load_record(out).to_json()  # the one loader: validated, older files upgraded
    figs = figures_from_results(results, folder=SLICE_TASK, command=argv, wall_s=wall, limit=SLICE_LIMIT,
                                sets=SLICE_SETS, slice_=True)
    # The train file's absolute path differs per machine; record it as the script writes it.
    figs["argv"] = [a if not a.startswith("data.train=") else f"data.train=<run folder>/{train.name}"
                    for a in figs["argv"]]
    figs["command"] = shlex.join(figs["argv"])
    return figs


def compare_slice(recorded: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why `new` differs from `recorded` beyond the tolerance: one message a lever, [] when it does not."""
    problems: list[str] = []
    old_rows = {r["name"]: r for r in recorded["levers"]}
    new_rows = {r["name"]: r for r in new["levers"]}
    if set(old_rows) != set(new_rows):
        problems.append(f"levers differ: recorded {sorted(old_rows)}, new {sorted(new_rows)}")
    for name in old_rows.keys() & new_rows.keys():
        old, cur = old_rows[name], new_rows[name]
        n = cur["n_eval"] or 1
        tol = SLICE_TOLERANCE_ITEMS / n
        if old["n_eval"] != cur["n_eval"]:
            problems.append(f"{name}: n_eval recorded {old['n_eval']}, new {cur['n_eval']}")
        if old["value"] is None or cur["value"] is None or abs(cur["value"] - old["value"]) > tol + 1e-9:
            problems.append(f"{name}: {cur['metric']} recorded {old['value']}, new {cur['value']}, "
                            f"tolerance ±{tol:.3f} ({SLICE_TOLERANCE_ITEMS} items of {n})")
        if old["state"] != cur["state"]:
            problems.append(f"{name}: state recorded {old['state']}, new {cur['state']}")
        old_m, new_m = _method(old), _method(cur)
        if old_m != new_m:
            problems.append(f"{name}: label ranking recorded {old_m}, new {new_m}")
    return problems


def _method(row: dict[str, Any]) -> tuple[Any, Any] | None:
    r = row.get("option_ranking")
    return (r.get("method"), r.get("why")) if r else None


# README blocks ------------------------------------------------------------------------------------

def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def _ranking(r: dict[str, Any] | None) -> str:
    if not r:
        return "—"
    method, why, natural = r.get("method"), r.get("why"), r.get("natural")
    if why == "switched" and natural and natural != method:
        return f"{method} (switched from {natural})"
    return f"{method} ({why})" if why else str(method)


def render_block(figs: dict[str, Any]) -> str:
    """The markdown README shows for one figures.json (between its markers)."""
    t = figs["target"]
    lines = [f"| lever | {t['metric']} (95% interval) | state vs {t['threshold']:.2f} | label ranking | wording |",
             "|---|---|---|---|---|"]
    for r in figs["levers"]:
        value = f"{_num(r['value'])} ({_num(r['ci_low'])}–{_num(r['ci_high'])})"
        lines.append(f"| {r['name']} | {value} | {r['state']} | {_ranking(r['option_ranking'])} "
                     f"| {r['wording'] or '—'} |")
    checks = figs.get("checks") or {}
    if checks:
        cols = list(next(iter(checks.values())))
        lines += ["", "Pass rate per check (every output, no gold needed):", "",
                  "| lever | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {name} | " + " | ".join(_num(v) for v in rates.values()) + " |" for name, rates in checks.items()]
    rec = figs["recommendation"]
    lines += ["", f"Verdict: **{rec['lever']}**: {rec['reason']}" if rec["lever"] else f"Verdict: {rec['reason']}", ""]
    for r in figs["levers"]:
        reason = (r.get("option_ranking") or {}).get("reason")
        if reason:
            lines.append(f"- {r['name']}'s label ranking: {reason}")
    lines += [f"- warning: {w}" for w in figs.get("warnings") or []]
    if lines[-1] != "":
        lines.append("")
    n = max((r["n_eval"] or 0) for r in figs["levers"]) if figs["levers"] else 0
    git = figs["git"]
    commit = (git["commit"] or "unknown")[:10] + (" with uncommitted changes" if git["dirty"] else "")
    date = (figs["date"] or "")[:10]
    computed = sum(r.get("computed_predictions") or 0 for r in figs["levers"])
    took = (f"{figs['wall_s']:.0f} s, every answer from the run store (computed by an earlier run of the same "
            "requests)" if not computed and figs["levers"] else f"{figs['wall_s']:.0f} s")
    lines.append(f"<sub>{n} eval items; commit {commit}; {date}; {took}; "
                 f"`{figs['command']}` (from `sample_tasks/{figs['folder']}/figures.json`)</sub>")
    if is_partial(figs):
        what = [f"the first {figs['limit']} eval items only"] if figs.get("limit") else []
        what += [f"`--set {s}`" for s in figs.get("sets") or []]
        lines.insert(0, f"**Limited run ({', '.join(what)}): not the task's figures; `make figures` "
                        "replaces it.**\n")
    return "\n".join(lines)


def is_partial(figs: dict[str, Any]) -> bool:
    """A run with --limit or --set: not the task's own figures."""
    return bool(figs.get("limit") or figs.get("sets"))


def _block_re(name: str) -> re.Pattern[str]:
    """Group 2 is the block's text (no newline either side); an empty block is the two markers' lines."""
    return re.compile(rf"(<!-- figures:{re.escape(name)} -->\n)(.*?)\n?(<!-- /figures:{re.escape(name)} -->)",
                      re.DOTALL)


def load_figures(name: str) -> dict[str, Any] | None:
    path = SAMPLES / name / "figures.json"
    return json.loads(path.read_text()) if path.is_file() else None


def readme_problems(readme: str) -> list[str]:
    """Where README's blocks differ from what the figures files render ([] when they agree)."""
    problems = []
    for name in TASKS:
        figs = load_figures(name)
        m = _block_re(name).search(readme)
        if figs is None and (m is None or not m.group(2).strip()):
            continue  # no file yet and nothing shown: an empty block is what a missing file renders
        if figs is None:
            problems.append(f"README's figures:{name} block shows figures but sample_tasks/{name}/figures.json "
                            "is missing: typed by hand?")
        elif m is None:
            problems.append(f"README has no <!-- figures:{name} --> block for sample_tasks/{name}/figures.json")
        elif m.group(2) != render_block(figs):
            problems.append(f"README's figures:{name} block differs from sample_tasks/{name}/figures.json; "
                            "run `python bench/figures.py --readme`")
    return problems


def update_readme(readme: str) -> str:
    for name in TASKS:
        figs = load_figures(name)
        if figs is None:
            continue
        pattern = _block_re(name)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- figures:{name} --> ... <!-- /figures:{name} --> block")
        block = render_block(figs)
        readme = pattern.sub(lambda m, b=block: m.group(1) + b + "\n" + m.group(3), readme)
    return readme


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", action="append", choices=TASKS, help="Run only this task (repeatable).")
    ap.add_argument("--limit", type=int, help="Pass --limit N to advise run (recorded; a limited run).")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="Pass --set KEY=VALUE to advise run (recorded; a limited run), e.g. "
                         "lever_options.lora.max_steps=10 for a quick check.")
    ap.add_argument("--force", action="store_true", help="Let a limited run overwrite a full figures file.")
    ap.add_argument("--slice", action="store_true", help="Run the CI slice and write " + _rel(SLICE_FILE))
    ap.add_argument("--readme", action="store_true", help="Only rewrite README's blocks from the files.")
    args = ap.parse_args(argv)
    if args.slice:
        figs = run_slice()
        _write_json(SLICE_FILE, figs)
        print(f"wrote {_rel(SLICE_FILE)} ({figs['wall_s']:.0f} s)")
        return
    if not args.readme:
        for name in args.task or TASKS:
            path = SAMPLES / name / "figures.json"
            old = load_figures(name)
            if (args.limit or args.sets) and old is not None and not is_partial(old) and not args.force:
                raise SystemExit(f"{_rel(path)} holds a full run; a --limit/--set run would overwrite it "
                                 "(--force to do it anyway)")
            figs = run_task(name, limit=args.limit, sets=tuple(args.sets))
            _write_json(path, figs)
            print(f"wrote {_rel(path)} ({figs['wall_s']:.0f} s)", flush=True)
    README.write_text(update_readme(README.read_text()))
    print("README.md blocks rewritten")


if __name__ == "__main__":
    main()
