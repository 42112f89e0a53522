"""When the world misbehaves during a real run (issue 27, folder and store side): a disk that fills,
results.json that cannot be written, a second run into a busy folder, a run killed with kill -9.

Every run asks the real llama.cpp server through the `openai:` backend, behind a proxy that logs each
request it forwards, so "a rerun buys nothing twice" is read off the request log: every item is
answered exactly once across the stop and the resume.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from openai_helpers import api_settings, run_cli, stored_predictions
from openai_proxy import FaultProxy

from advisor.cli import main
from advisor.store import RunStore
from tests.world_helpers import advise_cmd, fill, mount, one_line, tmpfs

pytestmark = pytest.mark.slow

N = 12


def _settings(url: str) -> str:
    # No price: the report's charts then have no priced lever (the legend warning of issue 27).
    return api_settings(url, max_concurrency=1)




def _intact(db: Path) -> None:
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        con.close()


def _no_twice(proxy: FaultProxy, stopped: bool = True, n: int = N) -> None:
    """Each eval item answered by the server over every run so far, each once but, after a stop, for at
    most two the stopped run was sent and could not store: the answer the full disk refused and one in
    flight beside it (a request already sent when the run stopped)."""
    twice = sum(k - 1 for k in Counter(proxy.answered).values())
    assert len(set(proxy.answered)) == n and twice <= (2 if stopped else 0), Counter(Counter(proxy.answered).values())


def _resume(task: Path, out: Path, saved: int, n: int = N) -> subprocess.CompletedProcess:
    done = run_cli(["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"])
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
    row = json.loads((out / "results.json").read_text())["levers"][0]
    assert row["computed_predictions"] == n - saved and row["n_eval"] == n
    return done


def _fresh_store_bytes(folder: Path) -> int:
    """Bytes an empty run store takes on disk (database, write-ahead log, shared memory, lock)."""
    from advisor.store import RunStore

    folder.mkdir()
    store = RunStore(folder / "advise.sqlite")
    try:
        return sum(p.stat().st_size for p in folder.iterdir())
    finally:
        store.close()


def test_a_full_disk_stops_the_run_in_one_line_and_the_rerun_resumes(llama_server, make_task, tmp_path):
    """Issue 27 (2): 'sqlite3.OperationalError: database or disk is full' from put_predictions, exit 1 with a
    traceback. A filesystem of a fresh store's footprint plus 48 kB fills after a few answers (the
    footprint is measured, since each new table a migration adds grows it)."""
    size = (_fresh_store_bytes(tmp_path / "fresh") + 48 * 1024 + 4095) // 4096 * 4
    with FaultProxy(llama_server.url) as proxy, tmpfs(tmp_path / "disk", f"{size}k") as disk:
        task = make_task(_settings(proxy.url), n_eval=N)
        out = disk / "run"
        stopped = run_cli(["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"])
        assert stopped.returncode == 1, stopped.stderr
        line = one_line(stopped)
        saved = stored_predictions(out)
        assert 1 <= saved < N, line
        assert line.startswith(f"error: the disk is full: {out / 'advise.sqlite'} could not be written (database or "
                               "disk is full); "), line
        assert f"the {saved} answers stored so far are saved in {out / 'advise.sqlite'} and a rerun reuses them" in line
        assert f"the {N - saved} eval answers still to compute need about " in line
        assert "per answer so far" in line and "B free there now; free some space and run again" in line
        assert 0 <= len(proxy.answered) - saved <= 2  # bought, not saved: the refused answer, one in flight
        assert mount("-o", "remount,size=16m", str(disk))  # space freed
        _intact(out / "advise.sqlite")
        _resume(task, out, saved)
        _no_twice(proxy)


def test_sqlite_full_inside_the_store_is_one_line_and_resumes(llama_server, make_task, tmp_path, monkeypatch):
    """The same fault where no filesystem can be mounted: SQLite's own page limit (PRAGMA max_page_count)
    raises a genuine SQLITE_FULL "database or disk is full" in the store, in the command run in-process.
    One page beyond the empty store's: 24 short answers overflow it (12 fit beside the run's record)."""
    n = 24
    original = RunStore._migrate

    def capped(self):
        original(self)
        (pages,) = self.db.execute("PRAGMA page_count").fetchone()
        self.db.execute(f"PRAGMA max_page_count = {pages + 1}")

    with FaultProxy(llama_server.url) as proxy:
        task = make_task(_settings(proxy.url), n_eval=n)
        out = tmp_path / "run"
        monkeypatch.setattr(RunStore, "_migrate", capped)
        r = CliRunner().invoke(main, ["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"])
        assert r.exit_code == 1, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
        saved = stored_predictions(out)
        assert 1 <= saved < n, r.output
        assert r.output.startswith(f"error: the disk is full: {out / 'advise.sqlite'} could not be written (database "
                                   f"or disk is full); the {saved} answers stored so far are saved"), r.output
        monkeypatch.setattr(RunStore, "_migrate", original)
        _intact(out / "advise.sqlite")
        _resume(task, out, saved, n)
        _no_twice(proxy, n=n)


def test_results_json_on_a_full_disk_is_one_line_and_the_rerun_recomputes_nothing(llama_server, make_task,
                                                                                    tmp_path, monkeypatch):
    """Every answer and score is stored when results.json meets ENOSPC: a real one, the filesystem filled
    to the last block just before results.json is written."""
    from advisor.record import RunRecord

    original = RunRecord.write

    def write_on_a_full_disk(self, path):
        fill(path.parent)
        return original(self, path)

    with FaultProxy(llama_server.url) as proxy, tmpfs(tmp_path / "disk", "16m") as disk:
        task = make_task(_settings(proxy.url), n_eval=N)
        out = disk / "run"
        monkeypatch.setattr(RunRecord, "write", write_on_a_full_disk)
        r = CliRunner().invoke(main, ["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"])
        assert r.exit_code == 1, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
        line = r.output.strip()
        assert line.startswith("error: the disk is full: results.json could not be written (") and (
            "No space left on device); it needs about " in line), line
        assert f"every answer and score of the run is saved in {out / 'advise.sqlite'}" in line
        assert not (out / "results.json.tmp").exists() and not (out / "results.json").exists()
        monkeypatch.setattr(RunRecord, "write", original)
        (out / "filler").unlink()
        _resume(task, out, N)  # nothing computed again
        _no_twice(proxy, stopped=False)


def test_a_second_run_into_a_busy_folder_is_refused_and_the_folder_names_one_run(llama_server, make_task, tmp_path):
    """Issue 27 (6): two runs into one --out interleaved their rows; results.json and the reports disagreed."""
    with FaultProxy(llama_server.url, delay_s=1.0) as proxy:
        task = make_task(_settings(proxy.url), n_eval=N)
        out = tmp_path / "run"
        args = ["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"]
        first = subprocess.Popen([*advise_cmd(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while stored_predictions(out) < 1 and time.time() < deadline and first.poll() is None:
            time.sleep(0.1)
        second = run_cli([*args, "--limit", "4"])
        assert first.poll() is None, "the first run ended before the second started: nothing was tested"
        assert second.returncode == 2
        assert one_line(second) == (f"error: {out}: another advise run (pid {first.pid}) is using this run folder; "
                                    "wait for it to finish, or give another --out")
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        assert "Warning" not in err, err  # no legend warning for a run whose price is unknown
        _no_twice(proxy, stopped=False)
        # Then a 4-item run into the same folder: results.json, the store and the report name it alone.
        again = run_cli([*args, "--limit", "4"])
        assert again.returncode == 0, again.stderr
        results = json.loads((out / "results.json").read_text())
        assert results["run_id"] == 2 and results["levers"][0]["n_eval"] == 4
        assert "of 4 items scored below 1" in (out / "report.md").read_text()
        con = sqlite3.connect(str(out / "advise.sqlite"))
        stored = json.loads(con.execute("SELECT results FROM runs WHERE id=2").fetchone()[0])
        assert con.execute("SELECT id, status FROM runs").fetchall() == [(1, "done"), (2, "done")]
        assert con.execute("SELECT COUNT(*) FROM run_items WHERE run_id=2").fetchone() == (4,)
        con.close()
        assert stored["run_id"] == 2 and stored["provenance"]["created"] == results["provenance"]["created"]


def test_a_run_killed_with_kill_9_is_marked_abandoned_and_resumed(llama_server, make_task, tmp_path):
    """Issue 27 (7): a run killed with kill -9 stayed `running` in the store forever."""
    with FaultProxy(llama_server.url, delay_s=0.3) as proxy:
        task = make_task(_settings(proxy.url), n_eval=N)
        out = tmp_path / "run"
        args = ["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"]
        proc = subprocess.Popen([*advise_cmd(), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while stored_predictions(out) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        saved = stored_predictions(out)
        assert 2 <= saved < N
        done = _resume(task, out, saved)
        note = one_line(done)
        assert note.startswith(f"note: {out}: run 1 (started ") and "marked abandoned" in note, note
        con = sqlite3.connect(str(out / "advise.sqlite"))
        assert con.execute("SELECT id, status FROM runs").fetchall() == [(1, "abandoned"), (2, "done")]
        con.close()
        # Each item bought once, but for the one request in flight when the kill landed (one at a time
        # here): answered, never stored.
        twice = sum(k - 1 for k in Counter(proxy.answered).values())
        assert twice <= 1 and len(proxy.answered) == N + twice
