"""Helpers for the tests of a world that misbehaves (issue 27): `advise` as a subprocess, its one-line
errors, and paths made read-only, immutable or full by what this machine permits (skipping, with the
reason, where it permits nothing)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _chmod_stops_writes() -> bool:
    """Whether permission bits stop this process: not for root (CAP_DAC_OVERRIDE), whatever its uid says."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        probe = Path(d) / "probe"
        probe.write_text("")
        probe.chmod(0o444)
        try:
            with open(probe, "a"):
                return False
        except PermissionError:
            return True


CHMOD_STOPS_WRITES = _chmod_stops_writes()


def advise_cmd() -> list[str]:
    """The `advise` command of the code under test (the working tree's, not an installed one)."""
    return [sys.executable, "-c", "from advisor.cli import main; main()"]


def advise(*args: str, stdout: object = subprocess.PIPE, timeout: float = 300) -> subprocess.CompletedProcess:
    """`advise ARGS` in a fresh process, as a user runs it."""
    return subprocess.run([*advise_cmd(), *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def one_line(proc: subprocess.CompletedProcess) -> str:
    """The only line on standard error; no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_server() -> list[str]:
    """`--set` arguments pointing the task at a server nobody runs: a run that gets past its checks
    fails at its first request, in one line, having computed nothing."""
    return ["--set", "model=openai:smollm2", "--set", f"openai={{base_url: 'http://127.0.0.1:{_free_port()}/v1'}}"]


def mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a folder) read-only for this process's children: chmod where permission bits stop
    writes (a user), else a read-only bind mount (root, whom chmod does not stop). Skips when neither works."""
    if CHMOD_STOPS_WRITES:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if not mount("--bind", str(path), str(path)):
        pytest.skip("running as root, where chmod does not stop writes, and bind mounts are not permitted here")
    try:
        if not mount("-o", "remount,bind,ro", str(path)):
            pytest.skip("running as root, and a read-only remount is not permitted here")
        yield
    finally:
        _umount(path)


@contextmanager
def tmpfs(path: Path, size: str, *options: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "64k") mounted at `path`; skips when mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    if not mount("-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(path)):
        pytest.skip("mounting a tmpfs is not permitted here (needs root or CAP_SYS_ADMIN)")
    try:
        yield path
    finally:
        _umount(path)


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`chattr +i path` (no process, root included, may change it); skips where it cannot be set."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr tool here")
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip(f"the immutable attribute cannot be set here (needs root and a filesystem that has it): {path}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the filesystem holding `folder` to the last block (a real ENOSPC for the next write)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
