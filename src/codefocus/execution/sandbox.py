"""Run untrusted Python in a separate, limited process; never in the harness process.

Each run gets a fresh temporary directory and its own unprivileged uid. Where the machine allows
it (root, as on this project's machines), the launcher also enters new mount and network
namespaces: every mount is read-only except the run's directory and there is no network at all.
Limits: wall time (the whole process group and every process of the run's uid are killed),
CPU time, address space, file size (which also caps stdout/stderr), processes, open files.
Without root the same code falls back to resource limits and a socket block, and says so in the
result's ``sandbox`` field.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from codefocus.serialization import JsonRecord

LAUNCHER = Path(__file__).with_name("_launcher.py")
OUTPUT_KEEP = 4096
_uids = itertools.count()
_uid_lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    timeout: float = 3.0  # seconds of wall time for the program and its tests
    memory_bytes: int = 2 << 30
    file_bytes: int = 4 << 20
    processes: int = 32
    open_files: int = 64
    isolate: bool = True


@dataclass(frozen=True)
class RunResult(JsonRecord):
    """What happened. ``status``: passed, failed, timed out, crashed."""

    status: str
    reason: str
    returncode: int | None
    seconds: float
    stdout: str
    stderr: str
    sandbox: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _next_uid() -> int:
    with _uid_lock:
        return 200_000 + (os.getpid() % 500) * 1000 + next(_uids) % 1000


def _processes_of(uid: int) -> list[int]:
    """Live processes of a uid (zombies excluded: they are dead, only not yet reaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if fields.get("State", "").split()[:1] in (["Z"], ["X"]) or "Uid" not in fields:
            continue
        if int(fields["Uid"].split()[0]) == uid:
            found.append(int(entry))
    return found


def _kill_all(process: subprocess.Popen, uid: int | None) -> None:
    """Kill the process group, then every process still running under the run's uid (daemons
    that left the group), until none is left."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is None:
        return
    deadline = time.monotonic() + 10.0  # a loaded machine may take a while to deliver SIGKILL
    while time.monotonic() < deadline:
        survivors = _processes_of(uid)
        if not survivors:
            return
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(OUTPUT_KEEP + 1)
    except OSError:
        return ""
    text = data[:OUTPUT_KEEP].decode("utf-8", errors="replace")
    return text + ("\n[truncated]" if len(data) > OUTPUT_KEEP else "")


def _reason(stderr: str) -> str:
    for line in reversed(stderr.splitlines()):
        if line.startswith("#failed: "):
            return "failed: " + line[len("#failed: ") :]
        if line.startswith("#exit before"):
            return "failed: " + line[1:]
    return ""


def run_python(program: str, tests: str, limits: Limits = Limits()) -> RunResult:  # noqa: B008
    """Run ``program`` then ``tests`` in the sandbox; passed only if the tests ran to the end."""
    root = os.geteuid() == 0
    uid = _next_uid() if root else None
    directory = Path(tempfile.mkdtemp(prefix="codefocus-run-"))
    # stdout/stderr live outside the run's directory, where the program cannot delete them
    outputs = Path(tempfile.mkdtemp(prefix="codefocus-out-"))
    try:
        (directory / "program.py").write_text(program, encoding="utf-8")
        (directory / "tests.py").write_text(tests, encoding="utf-8")
        if uid is not None:
            os.chown(directory, uid, uid)
            directory.chmod(0o700)
        read_end, write_end = os.pipe()
        config = {
            "directory": str(directory),
            "uid": uid if uid is not None else os.getuid(),
            # A backstop behind the wall clock: CPU time can reach the wall limit in a busy loop,
            # so an equal CPU limit would race it and turn a timeout into a "crash".
            "cpu_seconds": max(2, int(limits.timeout * 2) + 2),
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "open_files": limits.open_files,
            "processes": limits.processes,
            "result_fd": write_end,
            "isolate": limits.isolate,
        }
        nonce = secrets.token_hex(16)
        stdout_path, stderr_path = outputs / "stdout", outputs / "stderr"
        started = time.perf_counter()
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-B", str(LAUNCHER), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                pass_fds=(write_end,),
                start_new_session=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                cwd=str(directory),
            )
        os.close(write_end)
        timed_out = False
        try:
            assert process.stdin is not None  # opened with stdin=PIPE
            process.stdin.write(nonce.encode() + b"\n")
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            returncode = process.wait(timeout=limits.timeout + 1.0)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_all(process, uid)
            returncode = process.wait()
        seconds = time.perf_counter() - started
        _kill_all(process, uid)  # daemons spawned by the program die with the run
        with os.fdopen(read_end, "rb") as handle:
            marker = handle.read(64).decode(errors="replace")
        stdout, stderr = _tail(stdout_path), _tail(stderr_path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(outputs, ignore_errors=True)
    level = "unknown"
    if stderr.startswith("#sandbox level="):
        level = stderr.split()[1].split("=", 1)[1]
        stderr = stderr.split("\n", 1)[1] if "\n" in stderr else ""
    if timed_out:
        return RunResult("timed out", "timed out", None, seconds, stdout, stderr, level)
    if returncode == 0 and marker == nonce:
        return RunResult("passed", "passed", 0, seconds, stdout, stderr, level)
    reason = _reason(stderr)
    if returncode == -signal.SIGXCPU:  # the CPU-time backstop is a timeout too
        return RunResult("timed out", "timed out", returncode, seconds, stdout, stderr, level)
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else ""
        explain = {
            "SIGXCPU": "CPU time limit",
            "SIGXFSZ": "file size / output limit",
            "SIGKILL": "killed",
            "SIGSEGV": "segmentation fault",
        }.get(name, name)
        return RunResult(
            "crashed", f"crashed: {explain}", returncode, seconds, stdout, stderr, level
        )
    if not reason:
        reason = (
            "failed: the program exited before the tests finished"
            if marker != nonce
            else f"failed: exit status {returncode}"
        )
    return RunResult("failed", reason, returncode, seconds, stdout, stderr, level)
