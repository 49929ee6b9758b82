"""The layers that confine a sandbox child, and the probe that says which of them work on this machine. Imported
by sandbox_server.py (the fork server); stdlib only, plus pyseccomp and landlock where they are installed."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import sys
import tempfile

REPORT_FD = 3      # the one fd a child keeps open: its report pipe
NOFILE = 16        # RLIMIT_NOFILE of a child
DETAIL_CHARS = 300
PR_SET_PDEATHSIG = 1
PROBE_LIMITS = {"memory_mb": 1024, "cpu_s": 4, "timeout_s": 2.0, "output_bytes": 16384}

# seccomp: the child dies (SIGSYS) on these
KILLED = ("execve", "execveat", "fork", "vfork", "clone", "clone3", "socket", "socketpair", "connect", "bind",
          "listen", "accept", "accept4", "ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup",
          "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "userfaultfd", "mount", "umount2",
          "pivot_root", "chroot", "unshare", "setns", "open_by_handle_at", "name_to_handle_at", "kexec_load",
          "kexec_file_load", "init_module", "finit_module", "delete_module", "keyctl", "add_key", "request_key",
          "move_mount", "open_tree", "fsopen", "fsmount", "fspick", "reboot", "swapon", "swapoff")
# ... and these fail with EPERM (the program sees a PermissionError)
DENIED = ("creat", "truncate", "ftruncate", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir",
          "mkdirat", "rmdir", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown",
          "fchown", "lchown", "fchownat", "mknod", "mknodat", "kill", "tkill", "tgkill", "rt_sigqueueinfo",
          "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "setrlimit", "memfd_create",
          "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "settimeofday",
          "clock_settime", "adjtimex", "clock_adjtime", "sethostname", "setdomainname", "syslog", "acct",
          "quotactl", "iopl", "ioperm", "personality", "utime", "utimes", "utimensat", "futimesat", "setxattr",
          "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "fallocate", "msync",
          # raising its own priority (as root), reaching other processes' memory or scheduling
          "setpriority", "sched_setscheduler", "sched_setparam", "sched_setattr", "ioprio_set", "mlockall",
          "move_pages", "migrate_pages", "kcmp", "process_madvise", "memfd_secret", "fanotify_init",
          "mount_setattr",
          # System V and POSIX IPC: objects that outlive the child and could carry state to the next one
          "shmget", "shmat", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semctl",
          "semtimedop", "mq_open", "mq_unlink")
WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC)


# ---- layers ------------------------------------------------------------------------------------------------------

def build_seccomp():
    """The filter every child loads, built once here (libseccomp via pyseccomp)."""
    import pyseccomp as sc

    flt = sc.SyscallFilter(sc.ALLOW)
    for name in KILLED:
        flt.add_rule(sc.KILL_PROCESS, name)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        flt.add_rule(eperm, name)
    for flag in WRITE_FLAGS:  # open for writing: masked comparisons on the flags argument
        flt.add_rule(eperm, "open", sc.Arg(1, sc.MASKED_EQ, flag, flag))
        flt.add_rule(eperm, "openat", sc.Arg(2, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "openat2")  # its flags sit in a struct seccomp cannot read
    flt.add_rule(eperm, "prlimit64", sc.Arg(2, sc.NE, 0))  # reading a limit is fine, setting one is not
    return flt


def readable_roots() -> list[str]:
    """The folders a child may read beneath: the interpreter's own (stdlib, site-packages)."""
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    return sorted(r for r in roots if os.path.isdir(r))


def apply_landlock() -> None:
    import landlock

    rules = landlock.Ruleset()  # handles every file-system access right the kernel knows: all denied ...
    rules.allow(*readable_roots(), rules=landlock.FSAccess.READ_FILE | landlock.FSAccess.READ_DIR)  # ... but these
    rules.apply()
    os.close(rules._fd)  # the package leaves the ruleset's fd open; a child keeps no fd but its report pipe


def set_limits(limits: dict, n_inputs: int) -> None:
    mem = limits["memory_mb"] << 20
    cpu = limits["cpu_s"] * max(1, n_inputs)
    for res, value in ((resource.RLIMIT_AS, (mem, mem)), (resource.RLIMIT_CPU, (cpu, cpu + 1)),
                       (resource.RLIMIT_NPROC, (0, 0)), (resource.RLIMIT_FSIZE, (0, 0)),
                       (resource.RLIMIT_NOFILE, (NOFILE, NOFILE)), (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(res, value)


def isolate_fds(report_fd: int) -> None:
    """fds 0-2 on /dev/null, the report pipe on fd 3, nothing else open."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if report_fd != REPORT_FD:
        os.dup2(report_fd, REPORT_FD)
    os.closerange(REPORT_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def die_with_parent(parent: int) -> None:
    """SIGKILL when the server dies (a sleeping program would otherwise outlive it: no CPU limit reaches it)."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def confine(report_fd: int, folder: str, limits: dict, n_inputs: int, layers: dict, flt, server: int) -> None:
    """Every layer, in order; raises if a layer the probe found active fails here. `server`: the pid that forked
    this child (read before the fork: getppid() here could already be the reaper's)."""
    os.setpgid(0, 0)
    die_with_parent(server)
    isolate_fds(report_fd)
    os.chdir(folder)
    os.environ.clear()
    set_limits(limits, n_inputs)
    if layers.get("landlock") == "active":
        apply_landlock()
    if layers.get("seccomp") == "active":
        flt.load()


def library_roots() -> list[str]:
    """readable_roots() as given and as resolved: how code objects name the files of the stdlib and numpy."""
    given = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    return sorted(given | set(readable_roots()))


def probe(flt, seccomp_problem: str | None, skip: set[str], checks: dict) -> dict[str, str]:
    """Which layers work here: a throwaway child takes each one, as a program's child would, then tries what
    each should stop; `checks` ({"ast": f, "audit": g}) run last there and raise if their layer does not hold.
    {layer: "active" | "missing: <why>"}."""
    layers = {"fork_server": "active", "fds": "active", "tmpdir_env": "active", "rlimits": "active",
              "landlock": "active", "seccomp": "active" if seccomp_problem is None else f"missing: {seccomp_problem}"}
    layers.update({name: "missing: skipped on request" if name in skip else "active" for name in checks})
    try:
        import landlock

        landlock.landlock_abi_version()
        if "landlock" in skip:
            layers["landlock"] = "missing: skipped on request"
    except Exception as e:  # no module, kernel without Landlock, Landlock not in the LSM list
        layers["landlock"] = f"missing: {type(e).__name__}: {e}".splitlines()[0]
    r, w = os.pipe()
    folder = tempfile.mkdtemp(prefix="arc-sandbox-probe-")
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            probe_child(w, folder, layers, flt, checks)
        finally:
            os._exit(0)
    os.close(w)
    data = read_capped(r, 1 << 16)
    os.close(r)
    os.waitpid(pid, 0)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        layers.update(json.loads(data))
    except ValueError:
        layers.update({k: "missing: the probe child died before answering" for k in layers if k != "fork_server"})
    return layers


def probe_child(report_fd: int, folder: str, layers: dict, flt, checks: dict) -> None:
    """Each layer in confine's order; then check_layers and `checks`; one JSON object on the report pipe."""
    found = {}
    steps = (("fds", lambda: isolate_fds(report_fd)),
             ("tmpdir_env", lambda: (os.chdir(folder), os.environ.clear())),
             ("rlimits", lambda: set_limits(PROBE_LIMITS, 1)),
             ("landlock", apply_landlock), ("seccomp", lambda: flt.load()))
    take(steps, layers, found)
    pipe = REPORT_FD if found.get("fds") == "active" else report_fd  # where isolate_fds left it
    found.update(check_layers(found, folder))
    take(tuple(checks.items()), layers, found)  # after the others: the audit hook cannot be taken back
    write_all(pipe, json.dumps(found).encode())


def take(steps: tuple, layers: dict, found: dict) -> None:
    """Run each (name, step) whose layer is to be active; found[name]: "active" or "missing: <why>"."""
    for name, step in steps:
        if layers[name] == "active":
            try:
                step()
                found[name] = "active"
            except Exception as e:
                found[name] = "missing: " + short(e)


def check_layers(found: dict, folder: str) -> dict:
    """In the probe child: does each layer it took stop what it should?"""
    out = {}
    if found.get("fds") == "active":
        open_fds = [fd for fd in range(REPORT_FD + 1, 256) if fd_open(fd)]
        if open_fds:
            out["fds"] = f"missing: fds {open_fds[:5]} still open"
    if found.get("tmpdir_env") == "active" and (os.environ or os.getcwd() != os.path.realpath(folder)):
        out["tmpdir_env"] = "missing: the environment or the working folder was not reset"
    if found.get("rlimits") == "active" and (resource.getrlimit(resource.RLIMIT_NPROC) != (0, 0)
                                             or resource.getrlimit(resource.RLIMIT_FSIZE) != (0, 0)):
        out["rlimits"] = "missing: RLIMIT_NPROC / RLIMIT_FSIZE did not take"
    if found.get("seccomp") == "active":
        try:
            os.close(os.open("seccomp-probe", os.O_WRONLY | os.O_CREAT))
            out["seccomp"] = "missing: loaded, but a file opened for writing"
        except PermissionError:
            pass
    if found.get("landlock") == "active":
        try:
            os.listdir("/")
            out["landlock"] = "missing: applied, but / is still readable"
        except PermissionError:
            pass
    return out


def fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_capped(fd: int, cap: int) -> bytes:
    """At most cap + 1 bytes (one more than allowed tells the caller it was over)."""
    data = b""
    while len(data) <= cap and (chunk := os.read(fd, cap + 1 - len(data))):
        data += chunk
    return data


def short(e: BaseException) -> str:
    """`Type: message`, cut short; a message that cannot be read does not take the caller down."""
    try:
        text = str(e)
    except BaseException:
        text = "(its message could not be read)"
    return f"{type(e).__name__}: {text}"[:DETAIL_CHARS]
