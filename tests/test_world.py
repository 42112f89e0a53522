"""When the world misbehaves, folder and store side (issue 27): output paths that cannot be written,
a full disk, two runs into one folder, a run killed with kill -9, a damaged results.json, an empty
chart legend, one id in train and eval. No language model: a run that must get past its checks is
pointed at a server that is not there, so any work it would do fails at once.

Each fault is met for real: real files and folders, real SQLite, `advise` as a subprocess where the
message and the exit code are the point. Making a path read-only takes what works on this machine:
chmod for a user; for root, whom permission bits do not stop, a read-only bind mount or `chattr +i`
where permitted, else the case is skipped with the reason (the cases with a file in the way run
everywhere).
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from advisor.store import RunStore
from advisor.types import Example, Prediction
from tests.record_factory import lever_entry, record
from tests.world_helpers import (
    advise,
    dead_server,
    fill,
    immutable,
    mount,
    one_line,
    read_only,
    snapshot,
    tmpfs,
)

# -- 1. an output path that cannot be written ---------------------------------------------------------


def _earlier_run(folder: Path) -> None:
    """A run folder with an earlier run's answer in its store (what must never be lost)."""
    store = RunStore(folder / "advise.sqlite")
    store.put_predictions("prompt", "b", [("k1", Prediction("e1", "NUM", "NUM", 3, 1, 0.1, {}))])
    store.close()
    (folder / "results.json").write_text("{}")


UNWRITABLE = ["out-is-a-file", "store-is-a-folder", "results-is-a-folder", "store-read-only", "folder-read-only",
              "read-only-filesystem", "immutable-folder", "immutable-store"]


@pytest.mark.parametrize("case", UNWRITABLE)
def test_an_unwritable_out_is_refused_in_one_line_before_any_work(case, trec_small, tmp_path):
    """Issue 27 (1): Errno 30 from the runner, 'unable to open database file' from the store and a
    PermissionError all printed tracebacks with exit 1, some after loading the model."""
    out = tmp_path / "out"
    out.mkdir()
    _earlier_run(out)
    if case == "out-is-a-file":
        shutil.rmtree(out)
        out.write_text("a file")
    elif case == "store-is-a-folder":
        (out / "advise.sqlite").unlink()
        (out / "advise.sqlite").mkdir()
    elif case == "results-is-a-folder":
        (out / "results.json").unlink()
        (out / "results.json").mkdir()
    where = {"store-read-only": out / "advise.sqlite", "folder-read-only": out, "immutable-folder": out,
             "immutable-store": out / "advise.sqlite"}.get(case)
    before = snapshot(out) if out.is_dir() else None
    with contextmanager_for(case, out, where, tmp_path) as target:
        started = time.monotonic()
        proc = advise("run", str(trec_small), "--out", str(target), "--quiet", *dead_server())
        seconds = time.monotonic() - started
        line = one_line(proc)
        assert proc.returncode == 2, proc.stderr
        # Named by the option, before any model or server is asked (the server is not there: asking
        # it would have said "cannot reach the model server").
        assert line.startswith(f"error: --out {target}: "), line
        assert any(w in line for w in ("cannot be written", "not a folder", "is a folder", "Read-only")), line
        if target == out and before is not None:
            assert snapshot(out) == before  # nothing made, nothing lost
    assert seconds < 60


@contextmanager
def contextmanager_for(case: str, out: Path, where: Path | None, tmp_path: Path) -> Iterator[Path]:
    """The run folder to pass as --out, unwritable the way `case` says, for the body of the `with`."""
    if case in ("store-read-only", "folder-read-only"):
        with read_only(where):  # type: ignore[arg-type]
            yield out
    elif case in ("immutable-folder", "immutable-store"):
        with immutable(where):  # type: ignore[arg-type]
            yield out
    elif case == "read-only-filesystem":
        with tmpfs(tmp_path / "ro", "1m") as disk:
            shutil.copytree(out, disk / "out")
            if not mount("-o", "remount,ro", str(disk)):
                pytest.skip("a read-only remount is not permitted here")
            yield disk / "out"
    else:
        yield out


def test_the_store_refuses_an_unwritable_folder_in_one_line_for_every_caller(tmp_path):
    """The library's own guard behind the CLI's probe (`advise index` and scripts open the store too)."""
    from advisor.errors import InputError

    folder = tmp_path / "run"
    folder.mkdir()
    with read_only(folder):
        with pytest.raises(InputError) as e:
            RunStore(folder / "advise.sqlite")
    assert str(e.value).startswith(f"{folder}") and "cannot be written" in str(e.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot be written"):
        RunStore(tmp_path / "file" / "advise.sqlite")


def _stored_run(folder: Path, n: int, *, created: str = "2026-12-01T10:00:00Z", run_id: bool = True) -> Path:
    """Write a finished run of `n` items (results.json, and its rows in the folder's store)."""
    examples = [Example(f"e{i}", f"question {i}", "NUM", {"input": f"question {i}"}, f"data/eval.jsonl:{i + 1}",
                        f"h{i}") for i in range(n)]
    store = RunStore(folder / "advise.sqlite")
    rid = store.start_run("t")
    scores = [1.0 if i % 3 else 0.0 for i in range(n)]
    store.put_item_scores(rid, "prompt", [e.id for e in examples], {"accuracy": scores})
    store.put_run_items(rid, "prompt", examples, [Prediction(e.id, "NUM" if s else "HUM", "x", 1, 1, 0.1)
                                                 for e, s in zip(examples, scores)])
    results = record([lever_entry("prompt", sum(scores) / n, n=n)], provenance={
        "model": "hf:m", "task_sha256": "t", "prompt_sha256": "p", "created": created,
        "data": {"n_train": 10, "n_eval": n}})
    if run_id:
        results["run_id"] = rid
    store.finish_run(rid, "done", results)
    store.close()
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_a_read_only_run_folder_is_read_by_report_and_compare_and_refused_as_report_output(tmp_path):
    """A run folder on a read-only disk: `report` into it is one line (exit 2) naming the way out;
    `report --out` elsewhere and `compare` read it, per-item rows included (SQLite cannot make the
    shared-memory file a WAL reader needs in such a folder: the store is opened immutable)."""
    run = _stored_run(tmp_path / "run", 30)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    with read_only(run):
        proc = advise("report", str(run))
        assert proc.returncode == 2
        assert one_line(proc).startswith(f"error: RUN_DIR {run}: cannot be written: ")
        assert "give --out" in proc.stderr
        proc = advise("report", str(run), "--out", str(tmp_path / "rep"), "--format", "md")
        assert proc.returncode == 0, proc.stderr
        text = (tmp_path / "rep" / "report.md").read_text()
        assert "10 of 30 items scored below 1" in text, text[-2000:]
        proc = advise("compare", str(run), str(copy), "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["levers"][0]["n"] == 30
        # The read-only folder as report --out, for another run's reports.
        proc = advise("report", str(copy), "--out", str(run))
        assert proc.returncode == 2
        assert one_line(proc).startswith(f"error: --out {run}: cannot be written: ")


def test_standard_output_on_a_full_disk_is_one_line(tmp_path):
    """`advise compare A B --json > out.json` on a full disk: Python's "Exception ignored" or a traceback
    before; now one line naming standard output, exit 1. /dev/full fails every write with ENOSPC."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    run = _stored_run(tmp_path / "run", 12)
    for args in (["compare", str(run), str(run), "--json"], ["show", str(run)], ["schema"]):
        with open("/dev/full", "w") as full:
            proc = advise(*args, stdout=full)
        assert proc.returncode == 1, (args, proc.stderr)
        assert one_line(proc).startswith("error: the disk is full: standard output: No space left on device"), args


def test_a_report_on_a_full_disk_is_one_line_and_keeps_the_report_there(tmp_path):
    with tmpfs(tmp_path / "disk", "512k") as disk:
        run = _stored_run(disk / "run", 40)
        assert advise("report", str(run)).returncode == 0
        # A changed verdict: a report that did get written would differ from the one there.
        (run / "results.json").write_text((run / "results.json").read_text().replace('"test"', '"changed"'))
        before = snapshot(run)
        fill(disk)
        proc = advise("report", str(run))
        assert proc.returncode == 1, proc.stderr
        line = one_line(proc)
        assert line.startswith("error: the disk is full: ") and "No space left on device" in line
        assert "untouched" in line and "advise report` again" in line
        assert snapshot(run) == before  # the old report as it was, no half-written .tmp beside it


# -- 6. one run folder, one run --------------------------------------------------------------------------


HOLD = """
import sys, time
from pathlib import Path
from advisor.store import RunStore
store = RunStore(Path(sys.argv[1]))
if sys.argv[2] == "run":
    store.start_run("t")
print("ready", flush=True)
time.sleep(600)
"""


def _holder(db: Path, what: str = "hold") -> subprocess.Popen:
    """Another process with the store open for writing (a run in progress), until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), what], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_run_into_a_folder_in_use_is_refused_in_one_line(trec_small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _earlier_run(out)
    holder = _holder(out / "advise.sqlite")
    try:
        before = snapshot(out)
        proc = advise("run", str(trec_small), "--out", str(out), "--quiet", *dead_server())
        assert proc.returncode == 2
        assert one_line(proc) == (f"error: {out}: another advise run (pid {holder.pid}) is using this run folder; "
                                  "wait for it to finish, or give another --out")
        assert snapshot(out) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the killed holder's lock: the next run gets past it (to the missing server).
    proc = advise("run", str(trec_small), "--out", str(out), "--quiet", *dead_server())
    assert proc.returncode == 2 and "another advise run" not in proc.stderr
    assert "cannot reach the model server" in proc.stderr


def test_every_reader_takes_the_run_results_json_names(tmp_path):
    """Issue 27 (6): a 40-item and a 20-item run into one folder finishing in the same second; results.json
    was the 40-item run's, and compare paired the 20-item run's items, the report said "18 of 20 items"
    under a 40-item headline. Now results.json names its run and readers take that run's rows."""
    folder = tmp_path / "run"
    _stored_run(folder, 40)
    forty = (folder / "results.json").read_text()
    _stored_run(folder, 20)  # the same second, the later run: "the latest run"
    (folder / "results.json").write_text(forty)
    assert json.loads(forty)["run_id"] == 1
    proc = advise("report", str(folder), "--format", "md")
    assert proc.returncode == 0, proc.stderr
    text = (folder / "report.md").read_text()
    assert "of 40 items scored below 1" in text and "of 20 items" not in text
    proc = advise("compare", str(folder), str(folder), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["levers"][0]["n"] == 40

    # A results.json from before runs recorded their id, with two runs of that second in the store:
    # which one wrote it cannot be told, and no reader guesses.
    old = json.loads(forty)
    del old["run_id"]
    (folder / "results.json").write_text(json.dumps(old))
    proc = advise("compare", str(folder), str(folder))
    assert proc.returncode == 2
    assert one_line(proc) == (f"error: {folder / 'advise.sqlite'}: no per-item scores to pair: 2 finished runs in the "
                              "store were created at 2026-12-01T10:00:00Z, and this results.json, written before "
                              "runs recorded their id, does not say which one wrote it")
    assert advise("report", str(folder), "--format", "md").returncode == 0
    assert "No failures to show: 2 finished runs in the store were created" in (folder / "report.md").read_text()

    # A results.json whose run the store does not hold (a store replaced since) is not read against another.
    other = json.loads(forty)
    other["run_id"] = 7
    (folder / "results.json").write_text(json.dumps(other))
    proc = advise("compare", str(folder), str(folder))
    assert proc.returncode == 2 and "holds no finished run 7" in one_line(proc)


def test_a_run_killed_with_kill_9_is_marked_abandoned_by_the_next_run(trec_small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _earlier_run(out)
    holder = _holder(out / "advise.sqlite", "run")  # a run under way ...
    holder.send_signal(signal.SIGKILL)  # ... killed
    holder.wait()
    db = sqlite3.connect(str(out / "advise.sqlite"))
    assert db.execute("SELECT id, status FROM runs").fetchall() == [(1, "running")]  # forever, before
    db.close()
    proc = advise("run", str(trec_small), "--out", str(out), "--quiet", *dead_server())
    assert "Traceback" not in proc.stderr
    note, error = [x for x in proc.stderr.splitlines() if x.strip()]
    assert note.startswith(f"note: {out}: run 1 (started ") and "marked abandoned" in note
    assert "Every answer saved is kept and reused." in note
    assert error.startswith("error: ") and "cannot reach the model server" in error
    db = sqlite3.connect(str(out / "advise.sqlite"))
    assert db.execute("SELECT id, status FROM runs").fetchall() == [(1, "abandoned")]
    assert db.execute("SELECT COUNT(*) FROM predictions").fetchone() == (1,)  # the earlier answer kept
    db.close()
    # Said once: the next run finds nothing left to mark.
    proc = advise("run", str(trec_small), "--out", str(out), "--quiet", *dead_server())
    assert "abandoned" not in proc.stderr


# -- 7. smaller ------------------------------------------------------------------------------------------


def test_show_refuses_a_lever_without_metrics_in_one_line(tmp_path):
    """`advise show` crashed with KeyError: 'metrics' on such a file."""
    run = _stored_run(tmp_path / "run", 10)
    data = json.loads((run / "results.json").read_text())
    del data["levers"][0]["metrics"]
    (run / "results.json").write_text(json.dumps(data))
    v1 = tmp_path / "v1"
    v1.mkdir()
    old = {"task": "t", "kind": "classification", "target": {"metric": "accuracy", "threshold": 0.8, "confidence": 0.95},
           "recommendation": {"lever": None}, "levers": [{"name": "prompt", "rung": 0, "n_eval": 10}]}
    (v1 / "results.json").write_text(json.dumps(old))
    for folder in (run, v1):
        for command in ("show", "report", "compare"):
            proc = advise(command, str(folder), *([str(folder)] if command == "compare" else []))
            assert proc.returncode == 2, (command, proc.stderr)
            assert one_line(proc) == (f"error: {folder / 'results.json'}: levers.0.metrics: damaged results file: "
                                      "Field required"), command


def test_charts_of_a_run_with_no_known_price_draw_no_empty_legend(tmp_path):
    """Every `openai:` run with an unknown price printed matplotlib's 'No artists with labels found to put
    in legend'; with warnings as errors the report now renders."""
    from advisor.report.charts import volume_svg
    from advisor.report.render import write_reports

    run = _stored_run(tmp_path / "run", 10)
    data = json.loads((run / "results.json").read_text())
    data["levers"][0]["cost"].update(per_1k_queries_usd=None, monthly_usd=None, first_year_usd=None)
    (run / "results.json").write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svg = volume_svg([], volume=1000, marks=[])
        paths = write_reports(run)
    assert "<svg" in svg and [p.name for p in paths] == ["report.html", "report.md"]
    proc = advise("report", str(run))
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr


def _line(path: Path, ex_id: str) -> int:
    return next(n for n, text in enumerate(path.read_text().splitlines(), start=1) if f'"{ex_id}"' in text)


def test_an_id_in_both_train_and_eval_is_reported_even_when_the_texts_differ(trec_small, tmp_path):
    data = trec_small.parent / "data"
    eval_rows = [json.loads(x) for x in (data / "eval.jsonl").read_text().splitlines()]
    train = (data / "train.jsonl").read_text().splitlines()
    copied = dict(eval_rows[3], input=eval_rows[3]["input"] + " (edited)")  # an eval item copied, then edited
    train.insert(5, json.dumps(copied))
    (data / "train.jsonl").write_text("\n".join(train) + "\n")
    ex_id = copied["id"]
    where = f"train ({data / 'train.jsonl'}:6) and eval ({data / 'eval.jsonl'}:4)"
    warning = (f"warning: id '{ex_id}' is in both {where}: an eval item copied into train? (ids name items; "
               "`advise audit` lists every shared id)")

    proc = advise("validate", str(trec_small))
    assert proc.returncode == 0, proc.stderr
    assert warning in proc.stdout.splitlines(), proc.stdout
    proc = advise("audit", str(trec_small), "--json")
    assert proc.returncode == 0, proc.stderr
    found = next(f for f in json.loads(proc.stdout)["findings"] if f["check"] == "shared-id:train/eval")
    assert found["severity"] == "warning" and found["count"] == 1
    assert found["examples"] == [{"a": f"{data / 'train.jsonl'}:6", "b": f"{data / 'eval.jsonl'}:4",
                                  "text": f"id {ex_id}: the inputs differ"}]
    # At run start, before anything is asked of a model (here a server that is not there).
    proc = advise("run", str(trec_small), "--out", str(tmp_path / "out"), "--quiet", *dead_server())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == warning
