"""The sandbox's `audit` layer: a `sys.addaudithook` hook the child installs just before the program runs (numpy,
scipy and the library are imported by then). Stdlib only; loaded by sandbox_server.py by path.

    install(allowed_modules, roots, deny)   # deny(event, why) is called on an escape attempt and should not return
    deny = ender(report_fd, n_inputs, answered, detail_chars)   # a child's: "forbidden" reports, then exit

Denied wherever they come from: opening a file for writing, os.system / exec / spawn / fork, subprocess, signals to
other processes, sockets, ctypes (dlopen, dlsym, calls, addressof ...), new code objects, tracing, the garbage
collector's object lists, rlimits, changes to the file system. Denied when the program itself asks (no frame of an
allowed package such as numpy or scipy between it and the event): imports off the allow-list (numpy and scipy
import their own internals lazily at call time: those are theirs), frames (`sys._getframe`) and the attributes
CPython audits as `object.__getattr__` (gi_frame, tb_frame, __code__ ...). A module already in sys.modules raises
no import event, so `import os` passes here; what os would then do is denied above.

CPython's docs say it plainly: audit hooks are no sandbox (code can avoid raising events, e.g. by reaching C). This
is defence in depth beside seccomp and Landlock, which hold whatever the hook misses.
"""

from __future__ import annotations

import json
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
DENIED = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "pty.spawn", "subprocess.Popen",
    "os.kill", "os.killpg", "signal.pthread_kill", "code.__new__", "sys.settrace", "sys.setprofile",
    "sys._current_frames", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "resource.setrlimit",
    "resource.prlimit", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
    "os.symlink", "os.truncate", "os.utime", "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr",
    "sqlite3.connect", "urllib.Request", "webbrowser.open"})
DENIED_PREFIXES = ("socket.", "ctypes.", "shutil.")
ASKED_BY_PROGRAM = frozenset({"import", "sys._getframe", "object.__getattr__"})
IMPORT_MACHINERY = ("importlib", "_frozen_importlib", "_frozen_importlib_external")


def install(allowed: frozenset[str], roots: list[str], deny) -> None:
    """The hook, for good (an audit hook cannot be removed): `deny(event, why)` on an escape attempt; should it
    return, the event's operation fails with PermissionError."""
    judge, getframe, busy = make_judge(allowed, roots), sys._getframe, []  # busy: the hook's own events pass

    def hook(event: str, args: tuple) -> None:
        if busy:
            return
        busy.append(True)
        try:
            why = judge(event, args, getframe(1))
            if why:
                deny(event, why)
                raise PermissionError(f"sandbox audit hook: {event} denied ({why})")
        finally:
            busy.clear()

    sys.addaudithook(hook)


def ender(report_fd: int, n: int, answered: list[int], detail_chars: int):
    """deny() for a program's child: "forbidden" for the input under way and every one left, on the report pipe,
    then the child ends (a program cannot catch it). `answered[0]`: inputs reported so far. No builtin is looked
    up when it runs (the program may have rebound them): what it needs is bound here."""
    dumps, write, exit_now = json.dumps, os.write, os._exit

    def deny(event: str, why: str) -> None:
        i = first = answered[0]
        data = b""
        while i < n:
            detail = f"audit hook: {event} denied: {why}"[:detail_chars] if i == first \
                else f"not run: the program stopped on input {first} (forbidden)"
            data += (dumps({"i": i, "status": "forbidden", "grid": None, "detail": detail}) + "\n").encode()
            i += 1
        while data:
            data = data[write(report_fd, data):]
        exit_now(0)

    return deny


def make_judge(allowed: frozenset[str], roots: list[str]):
    """judge(event, args, frame) -> why the event is an escape attempt, or None. Every name it uses is bound
    here, once: a program that rebinds this module's names or builtins (isinstance, str ...) changes nothing."""
    roots = tuple(os.path.join(r, "") for r in roots)
    allowed, denied, prefixes, asked, machinery = (frozenset(allowed), DENIED, DENIED_PREFIXES, ASKED_BY_PROGRAM,
                                                   IMPORT_MACHINERY)
    write_flags, _isinstance, _len, _str, _int = WRITE_FLAGS, isinstance, len, str, int

    def by_program(frame) -> bool:
        """Walking out from the event: a frame of an allowed package (numpy, scipy, collections ...) means it
        asked; the import machinery and other library modules pass the question on; anything else (the program,
        text it exec'd, the library common.py) is the program."""
        while frame is not None:
            filename = frame.f_code.co_filename
            top = _str(frame.f_globals.get("__name__", "")).split(".")[0]
            if filename.startswith("<frozen ") or top in machinery:
                frame = frame.f_back
                continue
            if not filename.startswith(roots):
                return True
            if top in allowed:
                return False
            frame = frame.f_back
        return True

    def judge(event: str, args: tuple, frame) -> str | None:
        n = _len(args)
        if event == "open":
            mode = args[1] if n > 1 and _isinstance(args[1], _str) else ""
            flags = args[2] if n > 2 and _isinstance(args[2], _int) else 0
            if flags & write_flags or "w" in mode or "a" in mode or "x" in mode or "+" in mode:
                return f"opening {_str(args[0])[:80]!r} for writing"
            return None
        if event in denied or event.startswith(prefixes):
            return "never needed by a grid program"
        if event == "compile" and n > 1 and _isinstance(args[1], _str) and args[1].startswith(roots):
            return f"code compiled under a library's file name {args[1][:80]!r}"
        if event not in asked or (event == "import" and _str(args[0]).split(".")[0] in allowed):
            return None
        if not by_program(frame):
            return None
        what = f"import {args[0]}" if event == "import" else "frame access" if event == "sys._getframe" \
            else f"attribute {_str(args[1])[:40] if n > 1 else '?'}"
        return f"{what}, asked by the program"

    return judge


def self_test(allowed: frozenset[str], roots: list[str]) -> None:
    """For the probe (in a throwaway child: the hook stays): the hook sees a write and a dlopen; raises if not."""
    seen = []
    install(allowed, roots, lambda event, why: seen.append(event))
    for attempt in (lambda: open("audit-probe", "w"), lambda: __import__("ctypes").CDLL(None)):
        try:
            attempt()
        except Exception:
            pass
    if seen[:2] != ["open", "ctypes.dlopen"]:
        raise RuntimeError(f"the hook saw {seen[:4]}, not a write and a dlopen")
