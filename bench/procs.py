"""Child process handling for the benchmarks: start, pin, wait ready, account
CPU, and always clean up (normal exit, exception, Ctrl-C, SIGTERM)."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A benchmark step failed; the message says what and carries any log."""


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays clean for --json."""
    print(message, file=sys.stderr, flush=True)


class Children:
    """Every process the bench starts.

    Each child gets its own session, so a group signal reaches its descendants
    (a server may fork workers) and nothing else, and a terminal Ctrl-C reaches
    only the bench, which then stops the children itself.
    """

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        atexit.register(self.stop_all)

    def spawn(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(argv), start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        if proc in self._procs:
            self._procs.remove(proc)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace`, then reap.

        The leader is waited for without reaping (WNOWAIT) so that its pid, which
        is also the group id, cannot be reused before the final group SIGKILL.
        """
        self.forget(proc)
        if proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not _has_exited(proc.pid):
            time.sleep(0.05)
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _has_exited(pid: int) -> bool:
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def exit_on_signals() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so finally blocks and atexit run."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


@dataclass(frozen=True)
class Cpus:
    """Where the server and the load generator run; None means unpinned."""

    server: int | None
    loadgen: int | None


def choose_cpus(disk_of: Path | None = None) -> Cpus:
    """Server and load generator on two allowed cores, so they never compete for
    a core and the server's share is exactly one core. The server gets the core
    that takes the interrupts of the disk holding `disk_of` (where its spool and
    files go), if one of them does: then the server's own disk completions land
    on the server's core. On the load generator's they wait for it: on the 2-core
    dev VM the disk's interrupts all go to cpu 1 (its affinity cannot be changed
    in the guest), and an fdatasync from cpu 0 takes 8-16 ms while wrk keeps cpu 1
    busy, against 0.24 ms from cpu 1 while cpu 0 is busy (bench/fsync_latency.py)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or not shutil.which("taskset"):
        log("warning: fewer than 2 cores (or no taskset): processes are not pinned")
        return Cpus(None, None)
    server, loadgen = allowed[0], allowed[1]
    counts = disk_interrupts(disk_of) if disk_of is not None else {}
    busiest = max((cpu for cpu in allowed if counts.get(cpu)), key=lambda cpu: counts[cpu], default=None)
    if busiest is not None and busiest != server:
        server, loadgen = busiest, server
    return Cpus(server, loadgen)


def disk_interrupts(path: Path) -> dict[int, int]:
    """Interrupts taken so far per cpu by the device of the disk holding `path`
    (found through sysfs: the block device's nearest ancestor with MSI vectors or
    an `irq`); empty where there is none (tmpfs, overlay) or it cannot be read."""
    try:
        st = os.stat(path)
        device = Path(os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))
        irqs: set[str] = set()
        for node in (device, *device.parents):
            if (node / "msi_irqs").is_dir():
                irqs = {entry.name for entry in (node / "msi_irqs").iterdir()}
            elif (node / "irq").is_file():
                irqs = {(node / "irq").read_text().strip()} - {"0"}
            if irqs or node == Path("/sys/devices"):
                break
        lines = Path("/proc/interrupts").read_text().splitlines()
    except OSError:
        return {}
    if not irqs or not lines:
        return {}
    cpus = [int(name[3:]) for name in lines[0].split()]   # "CPU0 CPU1 ..."
    counts: dict[int, int] = {}
    for line in lines[1:]:
        number, _, rest = line.partition(":")
        if number.strip() in irqs:
            for cpu, field in zip(cpus, rest.split()):
                if field.isdigit():
                    counts[cpu] = counts.get(cpu, 0) + int(field)
    return counts


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """taskset execs the command, so the pid stays the command's own, and the
    affinity holds for every thread and child it creates from the start."""
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)


def group_cpu_seconds(pgid: int) -> float:
    """User+system CPU of the live processes in a process group (all threads)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # the name may hold spaces
        if int(fields[2]) == pgid:  # fields[0] is field 3 (state) of proc(5)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def core_busy_seconds(cpu: int | None) -> float:
    """Non-idle time of one core (all processes, interrupts, steal) from
    /proc/stat; minus the server's own CPU it shows what else ran on the
    server's core and so skewed a row (other sessions' tests, say)."""
    if cpu is None:
        return 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name == f"cpu{cpu}":
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in values[:8])
            return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    return 0.0


def idle_check(cpus: Cpus, seconds: float = 1.0) -> float:
    """Share of the two bench cores busy before any load: other sessions'
    work on a shared machine skews every row, so say so up front."""
    used = [c for c in (cpus.server, cpus.loadgen) if c is not None]
    if not used:
        return 0.0
    before = sum(core_busy_seconds(c) for c in used)
    time.sleep(seconds)
    return (sum(core_busy_seconds(c) for c in used) - before) / (seconds * len(used))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server under load, its output captured in a file (a pipe could fill
    up under load and stall it)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log_text():
                return
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with code {self.proc.returncode} before "
                    f"'{marker}'; its output:\n{self.log_text()}"
                )
            time.sleep(0.05)
        raise BenchError(f"{self.name}: no '{marker}' within {timeout:.0f}s; its output:\n{self.log_text()}")


def start_server(
    children: Children,
    name: str,
    argv: Sequence[str],
    ports: dict[str, int],
    log_path: Path,
    cpu: int | None,
    ready_marker: str,
    ready_timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    with open(log_path, "wb") as out:
        proc = children.spawn(
            pinned(argv, cpu),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
        )  # fmt: skip
    server = Server(name, proc, log_path, ports)
    try:
        server.wait_ready(ready_marker, ready_timeout)
    except BaseException:
        children.stop(proc)
        raise
    return server


def ensure_tool(binary: str, debian_package: str) -> None:
    """Install a load generator from Debian when missing and we are root."""
    if shutil.which(binary):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError(f"'{binary}' is missing: install it with: apt-get install -y {debian_package}")
    log(f"installing {debian_package} for {binary} ...")
    install = ["apt-get", "install", "-y", "-q", debian_package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"apt-get install {debian_package} failed:\n{result.stderr}")
    if not shutil.which(binary):
        raise BenchError(f"{debian_package} installed but '{binary}' is still not on PATH")
