"""Sandbox launcher: runs as its own process, sets up isolation, then runs the program.

Invoked as ``python -I _launcher.py CONFIG_JSON`` by ``sandbox.py`` (never imported by the
harness, so no generated code ever runs in the harness process). Standard library only.

Order: new mount + network namespaces (when permitted) -> every mount read-only except the
sandbox directory -> resource limits -> drop to a per-run unprivileged uid -> run the program and
its tests; on success write the run's nonce to the result pipe.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME = 16384, 1 << 18, 1 << 21
FLAG_BY_OPTION = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}


def _isolate(sandbox: str) -> str:
    """Private mounts, read-only everywhere but ``sandbox``, no network. Returns the level."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        return "rlimits"
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return "network"
    target = sandbox.encode()
    if libc.mount(target, target, None, MS_BIND, None) != 0:
        return "network"
    _expose_python(libc)
    with open("/proc/self/mounts") as handle:
        mounts = [line.split() for line in handle]
    for fields in mounts:
        point = fields[1].replace("\\040", " ")
        if point == sandbox:
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for option in fields[3].split(","):
            flags |= FLAG_BY_OPTION.get(option, 0)
        libc.mount(None, point.encode(), None, flags, None)  # best effort per mount
    return "namespaces"


def _blocking_ancestor(path: str) -> str | None:
    """The highest ancestor of ``path`` that other users cannot enter (e.g. /root, mode 700)."""
    parts = os.path.abspath(path).split(os.sep)
    for depth in range(2, len(parts) + 1):
        ancestor = os.sep.join(parts[:depth]) or os.sep
        try:
            if not os.stat(ancestor).st_mode & 0o001:
                return ancestor
        except OSError:
            return None
    return None


def _expose_python(libc) -> None:
    """Let the unprivileged uid import the standard library and site-packages.

    Python may live under a directory only root can enter (pyenv in /root). In our private mount
    namespace we cover such a directory with an empty tmpfs, which also hides its other
    contents, and bind the Python directories back in at their original paths.
    """
    needed = {os.path.realpath(p) for p in [sys.prefix, sys.base_prefix, *sys.path] if p}
    needed = {p for p in needed if os.path.isdir(p)}
    by_ancestor: dict[str, list[str]] = {}
    for path in needed:
        ancestor = _blocking_ancestor(path)
        if ancestor is not None:
            by_ancestor.setdefault(ancestor, []).append(path)
    for ancestor, paths in by_ancestor.items():
        paths = [p for p in sorted(paths) if not any(p.startswith(q + os.sep) for q in paths)]
        handles = {p: os.open(p, os.O_PATH) for p in paths}
        if libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", 0, b"mode=755,size=1m") != 0:
            continue
        for path, handle in handles.items():
            os.makedirs(path, exist_ok=True)
            libc.mount(
                f"/proc/self/fd/{handle}".encode(), path.encode(), None, MS_BIND | MS_REC, None
            )
            os.close(handle)


def _limit(config: dict) -> None:
    def cap(kind, value):
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_CPU, int(config["cpu_seconds"]))
    cap(resource.RLIMIT_AS, int(config["memory_bytes"]))
    cap(resource.RLIMIT_FSIZE, int(config["file_bytes"]))
    cap(resource.RLIMIT_NOFILE, int(config["open_files"]))
    cap(resource.RLIMIT_CORE, 0)
    if os.geteuid() == 0:  # the process cap is per uid: only meaningful for our own uid
        cap(resource.RLIMIT_NPROC, int(config["processes"]))


def _drop(uid: int) -> bool:
    if os.geteuid() != 0:
        return False
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    return True


def _block_sockets() -> None:
    """Without a network namespace: refuse socket creation inside the program (weaker)."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in the codefocus sandbox")

    socket.socket = refuse  # type: ignore[misc,assignment]
    socket.create_connection = refuse


def _run(config: dict, level: str) -> None:
    import builtins

    nonce = sys.stdin.readline().strip()
    sys.stdin.close()
    sys.stdin = open(os.devnull)  # noqa: SIM115
    result_fd = int(config["result_fd"])
    with open("program.py", encoding="utf-8") as handle:
        program = handle.read()
    with open("tests.py", encoding="utf-8") as handle:
        tests = handle.read()
    if level != "namespaces":
        _block_sockets()
    clean_builtins = dict(vars(builtins))
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(program, "program.py", "exec"), namespace)
    # the checker runs with a snapshot of the builtins taken before the program ran, so a
    # program that patches abs(), len() or AssertionError cannot make the asserts pass
    checker = dict(namespace)
    checker["__builtins__"] = clean_builtins
    exec(compile(tests, "tests.py", "exec"), checker)
    os.write(result_fd, nonce.encode())


def main() -> None:
    config = json.loads(sys.argv[1])
    sandbox = config["directory"]
    level = _isolate(sandbox) if config.get("isolate", True) else "rlimits"
    _limit(config)
    os.chdir(sandbox)
    dropped = _drop(int(config["uid"]))
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": sandbox, "LANG": "C.UTF-8"})
    sys.stderr.write(f"#sandbox level={level} uid_dropped={dropped}\n")
    sys.stderr.flush()
    try:
        _run(config, level)
    except SystemExit as stop:
        sys.stderr.write(f"\n#exit before the tests finished (exit status {stop.code})\n")
        sys.stderr.flush()
        os._exit(3)
    except BaseException as error:  # noqa: BLE001 - everything is a failure of the program
        sys.stderr.write(f"\n#failed: {type(error).__name__}: {error}\n"[:2000])
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
