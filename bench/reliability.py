"""Reliability run (not a test): keep an acknowledged load on the router while
its destination misbehaves and the router is reloaded, stopped and killed;
then count, per phase and in total, what was acknowledged, delivered,
dead-lettered, replayed, duplicated and lost (lost must be 0).

    python bench/reliability.py --minutes 3 --seed 1

Phases, one after the other, each with its own load and its own span ids:

1. flaky sink: random 503s (no Retry-After, `Retry-After: 0`, `1`) and random
   delays, so the destination's 4 exports in flight (`max_in_flight: 4`)
   complete out of order;
2. reloads: the config file is rewritten with another `timeout` /
   `batch.max_spans` and the router reloaded (SIGHUP or `otlp-router reload`)
   at random moments, the sink still flaky;
3. outage longer than `retry.max_elapsed` (3s): the sink answers 503 to
   everything; what outlives max_elapsed must be in the dead letter; then
   `otlp-router replay` with the sink healthy, counting what it delivers;
4a. SIGTERM with an unwritable local store (a permanent error): a second
   destination (`type: file`, `format: json`) whose directory is replaced by
   a regular file (ENOTDIR); the router must exit within `shutdown_timeout`
   + 1 s, every acknowledged span must then be in the per-trace documents or
   in the store's dead letter, and `otlp-router replay store` (directory
   fixed) must write the dead-lettered ones;
4b. SIGTERM with an unreachable S3 store (a retryable error): a per-trace
   JSON `type: s3` destination on moto's S3 server behind a TCP gate
   (tests/s3server.py), the gate shut during the load; the router must exit
   within `shutdown_timeout` + 1 s, keep what it had not written in its
   spool, and write it at the next start (gate open), nothing dead-lettered;
5. kill -9 at random moments, restarting each time.

It reuses the test suite's real parts: the router as a process on port-0
endpoints (tests/support.py) and a downstream OTLP/HTTP server that records
span ids (tests/downstream.py FlakySink). Exit 1 when a span was lost or a
check failed."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.downstream import FlakySink  # noqa: E402
from tests.support import ROOT, AckedLoad, RouterProcess, base_config  # noqa: E402

STRIDE = 10_000_000          # request numbers per phase: request n of phase p is p * STRIDE + n
SHUTDOWN_TIMEOUT = 3.0       # the router's shutdown_timeout in every phase
RETRY_FOREVER = {"initial_interval": "50ms", "max_interval": "500ms", "max_elapsed": "0s"}
RETRY_SHORT = {"max_elapsed": "3s", "initial_interval": "0.1s", "max_interval": "1s"}   # phase 3
MAX_ELAPSED = 3.0
DRAIN_TIMEOUT = 20.0         # longest wait for a phase's spans to arrive before moving on (--drain-timeout)
STOP_TIMEOUT = SHUTDOWN_TIMEOUT + 10.0   # SIGTERM between phases: kill -9 after this, and say so
TRACE_IDLE = 1.0             # the stores' trace_idle (phases 4a, 4b)
S3_RETRY = {"initial_interval": "100ms", "max_interval": "1s"}   # phase 4b's S3 store: retry forever


def phase_of(span_id: bytes) -> int:
    """The phase a span id was sent in (tests/support.py numbered_request: n * 10_000 + i + 1)."""
    return (int.from_bytes(span_id, "big") - 1) // 10_000 // STRIDE


@dataclass
class Phase:
    index: int                                           # its span ids: request numbers index * STRIDE + n
    label: str                                           # as printed: "1" ... "4a", "4b", "5"
    title: str
    seconds: float                                       # load time
    acked: set[bytes] = field(default_factory=set)
    sent: int = 0
    dead: set[bytes] = field(default_factory=set)        # dead-lettered span ids (seen at any time)
    replayed: set[bytes] = field(default_factory=set)    # dead-lettered ones `otlp-router replay` delivered
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)      # checks that failed
    late: set[bytes] = field(default_factory=set)        # not at the sink when the drain wait ended
    store: dict[str, int] | None = None                  # phases 4a/4b: the per-trace JSON store's counts
    store_title: str = ""


class Target:
    """What AckedLoad posts to: the router of the moment. An HTTP-level failure
    (a router killed mid-answer) reads as OSError, i.e. not acknowledged."""

    def __init__(self) -> None:
        self.router: RouterProcess | None = None

    def post(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        router = self.router
        if router is None:
            raise OSError("no router running")
        try:
            return router.post(*args, **kwargs)
        except http.client.HTTPException as e:
            raise OSError(f"{type(e).__name__}: {e}") from None


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """preexec_fn: the router gets SIGKILL if this script dies (PR_SET_PDEATHSIG), so none is left over."""
    _LIBC.prctl(1, signal.SIGKILL)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.rng = random.Random(args.seed)
        self.sink = FlakySink(seed=args.seed, keep_arrivals=False)
        self.target = Target()
        self.routers: list[RouterProcess] = []
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.store_dir = workdir / "store"
        self.store_aside = workdir / "store.ok"
        self.drain_timeout = args.drain_timeout
        self.phase: Phase | None = None   # the phase running, for notes on stops
        self.moto: Any = None             # phase 4b: tests.s3server.MotoServer and Gate
        self.gate: Any = None

    # ----- routers -------------------------------------------------------

    def config(self, retry: dict[str, str] | None = None, timeout: str = "10s", max_spans: int = 8192,
               store: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        destinations: dict[str, Any] = {"down": {
            "type": "otlp_http", "endpoint": self.sink.url, "max_in_flight": 4, "timeout": timeout,
            "batch": {"flush_interval": "10ms", "max_spans": max_spans},
            "retry": retry or RETRY_FOREVER}}
        if store:
            destinations["store"] = {"type": "file", "format": "json", "dir": str(self.store_dir),
                                     "trace_idle": f"{TRACE_IDLE:g}s"}
        destinations.update(extra or {})
        return base_config(self.workdir, destinations=destinations, shutdown_timeout=f"{SHUTDOWN_TIMEOUT:g}s")

    @property
    def router(self) -> RouterProcess:
        assert self.target.router is not None
        return self.target.router

    def start_router(self, config: dict[str, Any]) -> RouterProcess:
        router = RouterProcess(config, self.workdir, timeout=30, preexec_fn=_die_with_parent)
        self.routers.append(router)
        self.target.router = router
        return router

    def _save_log(self, router: RouterProcess) -> None:
        n = self.routers.index(router)
        (self.logs / f"router-{n:03d}.log").write_text(router.stderr)

    def stop_router(self, timeout: float = STOP_TIMEOUT, checked: bool = True) -> tuple[int | None, float]:
        """SIGTERM; kill -9 after `timeout`. Returns (exit code or None if it had to be killed, seconds).
        A router that had to be killed (or exited non-zero) fails the phase's check unless `checked` is off."""
        router = self.router
        started = time.monotonic()
        try:
            code: int | None = router.stop(timeout)
        except RuntimeError:
            code = None   # RouterProcess.stop killed it
        elapsed = time.monotonic() - started
        self._save_log(router)
        if checked and self.phase is not None and code != 0:
            what = f"exit {code}" if code is not None else f"no exit within {timeout:g}s, killed"
            self.phase.failed.append(f"SIGTERM after the load: {what} ({elapsed:.1f}s)")
        return code, elapsed

    def kill_router(self) -> None:
        self.router.proc.send_signal(signal.SIGKILL)
        self.router.kill()
        self._save_log(self.router)

    def cleanup(self) -> None:
        for router in self.routers:
            if router.proc.poll() is None:
                with contextlib.suppress(Exception):
                    router.kill()
        with contextlib.suppress(Exception):
            self.sink.close()
        if self.gate is not None:
            with contextlib.suppress(Exception):
                self.gate.shut()
        if self.moto is not None:
            with contextlib.suppress(Exception):
                self.moto.stop()

    def write_config(self, config: dict[str, Any]) -> None:
        """Replace the running router's config file in one rename (a reload never reads half of it)."""
        path = self.router.config_path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config))
        os.replace(tmp, path)

    def cli(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "otlp_router", *argv, "-c", str(self.router.config_path)]
        try:
            return subprocess.run(command, cwd=self.workdir, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(command, -1, str(e.stdout or ""), f"timed out after {timeout:g}s")

    # ----- load and counting ---------------------------------------------

    @contextlib.contextmanager
    def load(self, phase: Phase) -> Iterator[AckedLoad]:
        """An AckedLoad for the phase's span ids while the block runs."""
        load = AckedLoad([self.target], self.args.spans)  # type: ignore[list-item]
        load.sent = phase.index * STRIDE
        load.start()
        try:
            yield load
        finally:
            load.done.set()
            load.join(15)
            phase.acked |= load.acked
            phase.sent = load.sent - phase.index * STRIDE
            progress(f"phase {phase.label}: {phase.sent:,} requests, {len(phase.acked):,} spans acknowledged")

    def dead_letter_ids(self, destination: str = "down") -> tuple[set[bytes], int]:
        """Span ids in a destination's dead letter (`spool/<destination>/dead`, or under
        `spool/worker-N/` with workers), and how many files hold them."""
        from otlp_router.spool.deadletter import DeadLetters
        spool = self.workdir / "spool"
        ids: set[bytes] = set()
        files = 0
        for directory in [spool / destination / "dead", *spool.glob(f"worker-*/{destination}/dead")]:
            try:
                letters = DeadLetters(directory, 7 * 86400).list()
            except Exception as e:  # noqa: BLE001 - a format being rewritten must not stop the run
                progress(f"cannot read dead letters in {directory}: {e!r}")
                continue
            files += len(letters)
            for letter in letters:
                for batch in letter.batches:
                    ids.update(s.span_id for rs in batch.message.resource_spans
                               for ss in rs.scope_spans for s in ss.spans)
        return ids, files

    def wait_delivered(self, phase: Phase, extra: float = 0.0, dead_counts: bool = False) -> int:
        """Wait until the phase's acknowledged spans reached the sink (or, with
        dead_counts, its dead letter); returns how many did not within the drain timeout + `extra`."""
        pending = set(phase.acked)
        timeout = self.drain_timeout + extra
        started = time.monotonic()
        deadline = started + timeout
        next_dead = 0.0
        while True:
            pending = self.sink.undelivered(pending)
            if dead_counts and pending and time.monotonic() >= next_dead:
                dead, _ = self.dead_letter_ids()
                phase.dead |= dead
                pending -= dead
                next_dead = time.monotonic() + 1.0
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if pending:
            phase.late |= pending
            phase.notes.append(f"{len(pending):,} acknowledged spans not at the sink (nor dead-lettered) "
                               f"{timeout:g}s after the load")
        else:
            phase.notes.append(f"all acknowledged spans at the sink{' or in its dead letter' if dead_counts else ''} "
                               f"{time.monotonic() - started:.1f}s after the load")
        return len(pending)

    def store_ids(self, root: Path) -> Counter[bytes]:
        """Span ids in the per-trace JSON documents under `root` (times found)."""
        ids: Counter[bytes] = Counter()
        if not root.is_dir():
            return ids
        for path in root.rglob("*.json"):
            try:
                document = orjson.loads(path.read_bytes())
                ids.update(bytes.fromhex(o["id"]) for o in document["observations"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                progress(f"unreadable trace document {path}: {e!r}")
        return ids

    def run_for(self, seconds: float, step: Callable[[], float] | None = None, first: float = 0.0) -> None:
        """Sleep `seconds`; with `step`, call it after `first` seconds, then whenever the delay it
        last returned has passed."""
        deadline = time.monotonic() + seconds
        wake = time.monotonic() + (first if step else seconds)
        while (now := time.monotonic()) < deadline:
            if step and now >= wake:
                wake = now + step()
            time.sleep(max(0.0, min(deadline, wake) - time.monotonic()))

    # ----- phases --------------------------------------------------------

    def flaky(self, phase: Phase) -> None:
        self.sink.configure(failure_rate=0.2, delay=(0.0, 0.06), down=False)
        refused, out_of_order = self.sink.refused, self.sink.out_of_order
        self.start_router(self.config())
        with self.load(phase):
            self.run_for(phase.seconds)
        self.wait_delivered(phase)
        phase.notes.append(f"sink answered 503 {self.sink.refused - refused:,}x (Retry-After none / 0 / 1); "
                           f"{self.sink.out_of_order - out_of_order:,} exports completed out of order")

    def reloads(self, phase: Phase) -> None:
        """Keeps phase 1's router; rewrites its config and reloads it at random moments."""
        self.sink.configure(failure_rate=0.1, delay=(0.0, 0.04))
        if self.target.router is None or self.router.proc.poll() is not None:
            self.start_router(self.config())
        applied_before = self.router.stderr.count("reloaded ")
        settings = {"timeout": "10s", "max_spans": 8192}
        sent = {"SIGHUP": 0, "otlp-router reload": 0}
        problems: list[str] = []

        def reload() -> float:
            key = self.rng.choice(["timeout", "max_spans", "both"])
            if key in ("timeout", "both"):
                settings["timeout"] = "2s" if settings["timeout"] == "10s" else "10s"
            if key in ("max_spans", "both"):
                settings["max_spans"] = 256 if settings["max_spans"] == 8192 else 8192
            self.write_config(self.config(**settings))  # type: ignore[arg-type]
            if self.rng.random() < 0.5:
                os.kill(self.router.proc.pid, signal.SIGHUP)
                sent["SIGHUP"] += 1
            else:
                result = self.cli("reload", timeout=30)
                sent["otlp-router reload"] += 1
                if result.returncode != 0:
                    problems.append(f"otlp-router reload exit {result.returncode}: {result.stderr.strip()[-200:]}")
            return self.rng.uniform(0.3, 1.5)

        with self.load(phase):
            self.run_for(phase.seconds, reload, first=self.rng.uniform(0.3, 1.5))
        self.wait_delivered(phase)
        total = sum(sent.values())
        applied = self.router.stderr.count("reloaded ") - applied_before
        refused = self.router.stderr.count("reload refused")
        phase.notes.append(f"{total} reloads ({sent['SIGHUP']} SIGHUP, {sent['otlp-router reload']} "
                           f"otlp-router reload), {applied} logged as applied, {refused} refused")
        phase.notes.extend(problems)
        if self.router.proc.poll() is not None:
            phase.failed.append(f"router exited during the reloads (code {self.router.proc.returncode})")
        elif applied < total:
            phase.failed.append(f"{total - applied} of {total} reloads never logged 'reloaded' (stuck or lost)")
        self.stop_router()

    def outage(self, phase: Phase) -> None:
        self.sink.configure(failure_rate=0.0, delay=(0.0, 0.01), down=False)
        self.start_router(self.config(retry=RETRY_SHORT))
        outage = MAX_ELAPSED + max(2.0, phase.seconds / 4)
        lead = max(1.0, (phase.seconds - outage) / 3)
        with self.load(phase):
            self.run_for(lead)
            self.sink.configure(down=True)
            progress(f"phase {phase.label}: sink down for {outage:.1f}s")
            self.run_for(outage)
            self.sink.configure(down=False)
            self.run_for(max(1.0, phase.seconds - lead - outage))
        self.wait_delivered(phase, MAX_ELAPSED, dead_counts=True)
        dead, files = self.dead_letter_ids()
        phase.dead |= dead
        phase.notes.append(f"sink down {outage:.1f}s (max_elapsed {MAX_ELAPSED:g}s); "
                           f"{len(dead):,} spans in {files} dead-letter file(s)")
        undelivered = self.sink.undelivered(dead)
        result = self.cli("replay", timeout=120)
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        phase.replayed = undelivered - self.sink.undelivered(undelivered)
        left, left_files = self.dead_letter_ids()
        phase.notes.append(f"otlp-router replay: exit {result.returncode}, {len(lines)} line(s)"
                           + (f", last: {lines[-1][:120]}" if lines else "")
                           + f"; {len(phase.replayed):,} spans delivered; {left_files} file(s) left")
        if result.returncode != 0 and dead:
            phase.failed.append(f"replay exit {result.returncode}: {result.stderr.strip()[-300:]}")
        if left:
            phase.failed.append(f"{len(left):,} dead-lettered spans not delivered by replay")
        self.stop_router()

    def break_store(self) -> None:
        """Replace the store's directory by a regular file (as root, chmod would not stop writes):
        every mkdir / open under it fails with ENOTDIR. What was written so far is kept aside."""
        if self.store_dir.is_dir():
            os.replace(self.store_dir, self.store_aside)
        self.store_dir.write_text("a file where the store's directory was: writes fail\n")

    def fix_store(self) -> None:
        self.store_dir.unlink()
        if self.store_aside.is_dir():
            os.replace(self.store_aside, self.store_dir)

    def sigterm(self, phase: Phase) -> tuple[int | None, float]:
        """SIGTERM while the load still posts; fails the phase when the router takes longer than
        shutdown_timeout + 1 s (or has to be killed). Returns (exit code or None, seconds)."""
        budget = SHUTDOWN_TIMEOUT + 1.0
        code, took = self.stop_router(timeout=budget + 10.0, checked=False)
        exited = f"exit {code}" if code is not None else "did not exit, killed"
        phase.notes.append(f"SIGTERM: {exited} after {took:.2f}s (budget: shutdown_timeout {SHUTDOWN_TIMEOUT:g}s "
                           f"+ 1s)")
        if code is None or took > budget:
            phase.failed.append(f"SIGTERM took {took:.2f}s ({exited}), more than {budget:g}s")
        elif code != 0:
            phase.failed.append(f"SIGTERM: {exited} after {took:.2f}s")
        return code, took

    def sigterm_unwritable_store(self, phase: Phase) -> None:
        """4a: a local directory not writable is permanent: dead letter, then `otlp-router replay`."""
        self.sink.configure(failure_rate=0.0, delay=(0.0, 0.01), down=False)
        config = self.config(store=True)
        self.start_router(config)
        with self.load(phase):
            self.run_for(phase.seconds / 2)
            self.break_store()
            progress(f"phase {phase.label}: store directory replaced by a file")
            self.run_for(max(phase.seconds / 2, TRACE_IDLE + 1.0))   # traces fall due and fail to write
            self.sigterm(phase)
        acked = phase.acked
        written = self.store_ids(self.store_aside)
        dead, files = self.dead_letter_ids("store")
        neither = acked - written.keys() - dead
        phase.notes.append(f"store: {len(acked & written.keys()):,} acknowledged spans written before SIGTERM, "
                           f"{len(acked & dead):,} in its dead letter ({files} file(s)), {len(neither):,} in neither")
        if neither:
            phase.failed.append(f"store: {len(neither):,} acknowledged spans neither in the per-trace documents "
                                f"nor in the dead letter after SIGTERM")
        self.wait_delivered(phase)

        # The directory fixed, `otlp-router replay store` must write the dead-lettered spans.
        self.fix_store()
        replayed: set[bytes] = set()
        if dead:
            result = self.cli("replay", "store", timeout=120)
            lines = [line for line in result.stdout.splitlines() if line.strip()]
            after = self.store_ids(self.store_dir)
            replayed = dead & after.keys()   # a trace written as the directory went may be in both
            left, left_files = self.dead_letter_ids("store")
            phase.notes.append(f"store: otlp-router replay store: exit {result.returncode}, {len(lines)} line(s)"
                               + (f", last: {lines[-1][:120]}" if lines else "")
                               + f"; {len(replayed):,} spans in the documents after it"
                               + (f" ({len(dead & written.keys()):,} were already before)" if dead & written.keys()
                                  else "") + f"; {left_files} dead-letter file(s) left")
            if result.returncode != 0:
                phase.failed.append(f"replay store exit {result.returncode}: {result.stderr.strip()[-300:]}")
            if dead - after.keys():
                phase.failed.append(f"store: {len(dead - after.keys()):,} dead-lettered spans not written by replay")
            if left:
                phase.failed.append(f"store: {len(left):,} spans still in the dead letter after replay")
        else:
            phase.notes.append("store: nothing dead-lettered (no trace fell due while the directory was broken?)")
        final = self.store_ids(self.store_dir)
        phase.store_title = "local store (file, json)"
        phase.store = {"acked": len(acked), "delivered": len(acked & final.keys()), "dead": len(acked & dead),
                       "replayed": len(replayed), "lost": len(acked - final.keys() - dead),
                       "duplicates": sum(final.values()) - len(final)}

    def bucket_ids(self, moto: Any, bucket: str, cache: dict[tuple[str, str], list[bytes]]) -> Counter[bytes]:
        """Span ids in the per-trace JSON objects of a bucket (times found), read straight from moto
        (not through the gate); objects already read (same key and ETag) come from `cache`."""
        client = moto.client()
        ids: Counter[bytes] = Counter()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                key = (obj["Key"], obj["ETag"])
                if key not in cache:
                    try:
                        document = orjson.loads(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                        cache[key] = [bytes.fromhex(o["id"]) for o in document["observations"]]
                    except (ValueError, KeyError, TypeError) as e:
                        progress(f"unreadable trace object s3://{bucket}/{obj['Key']}: {e!r}")
                        continue
                ids.update(cache[key])
        return ids

    def sigterm_unreachable_s3(self, phase: Phase) -> None:
        """4b: an unreachable endpoint is retryable: SIGTERM keeps the unwritten in the spool."""
        from tests.s3server import Gate, MotoServer
        self.sink.configure(failure_rate=0.0, delay=(0.0, 0.01), down=False)
        self.moto = moto = MotoServer()
        self.gate = gate = Gate(moto.port)
        bucket = moto.bucket("reliability")
        store = {**moto.destination(bucket, format="json", trace_idle=f"{TRACE_IDLE:g}s"),
                 "endpoint": gate.endpoint, "retry": S3_RETRY}
        config = self.config(extra={"bucket": store})
        cache: dict[tuple[str, str], list[bytes]] = {}
        self.start_router(config)
        with self.load(phase):
            self.run_for(max(TRACE_IDLE + 1.0, phase.seconds * 0.4))
            gate.shut()
            progress(f"phase {phase.label}: S3 gate shut")
            self.run_for(max(phase.seconds * 0.6, TRACE_IDLE + 2.0))   # traces fall due; uploads fail, retried
            failures = [line.split("failed, ", 1)[1] for line in self.router.stderr.splitlines()
                        if "destination bucket: export of" in line and "failed, " in line]
            self.sigterm(phase)
        acked = phase.acked
        written = self.bucket_ids(moto, bucket, cache)
        dead, files = self.dead_letter_ids("bucket")
        missing = acked - written.keys()
        phase.notes.append(f"S3 store: {len(acked & written.keys()):,} acknowledged spans in the bucket before "
                           f"SIGTERM, {len(missing):,} not; {len(acked & dead):,} in its dead letter ({files} file(s))"
                           + (f"; {len(failures)} 'export failed' log line(s) before SIGTERM (repeats held "
                              f"back), the first: {failures[0][:90]}" if failures else
                              "; no 'export failed' logged before SIGTERM"))
        if not missing:
            phase.notes.append("S3 store: nothing left unwritten at SIGTERM: the gate check proves nothing")

        # The gate open, the next start must write what its spool kept.
        gate.open()
        progress(f"phase {phase.label}: S3 gate open, restarting")
        self.start_router(config)
        # moto takes a few ms a PUT: wait as long as objects keep coming, give up after
        # --drain-timeout (+ trace_idle) without a new one.
        pending = set(missing)
        started = last = time.monotonic()
        while pending and time.monotonic() - last < self.drain_timeout + TRACE_IDLE:
            time.sleep(1.0)
            before = len(pending)
            pending -= self.bucket_ids(moto, bucket, cache).keys()
            if len(pending) < before:
                last = time.monotonic()
        if pending:
            phase.notes.append(f"S3 store: {len(pending):,} spans not in the bucket after the restart "
                               f"(none came for {self.drain_timeout + TRACE_IDLE:g}s)")
        else:
            phase.notes.append(f"S3 store: the next start wrote the {len(missing):,} spans "
                               f"{time.monotonic() - started:.1f}s after it")
        self.wait_delivered(phase)
        self.stop_router()
        final = self.bucket_ids(moto, bucket, cache)
        dead_now, files = self.dead_letter_ids("bucket")
        dead |= dead_now
        not_kept = missing - final.keys()
        if not_kept:
            phase.failed.append(f"S3 store: {len(not_kept):,} spans not written at SIGTERM were not written at the "
                                f"next start ({len(not_kept & dead):,} of them in its dead letter instead)")
        if dead:
            phase.failed.append(f"S3 store: {len(dead):,} spans dead-lettered ({files} file(s) at the end) for a "
                                f"retryable outage")
        if "dead letter" in "".join(r.stderr for r in self.routers[-2:]):
            phase.notes.append("S3 store: a router log mentions the dead letter")
        phase.store_title = "S3 store (moto, gate)"
        phase.store = {"acked": len(acked), "delivered": len(acked & final.keys()), "dead": len(acked & dead),
                       "replayed": 0, "lost": len(acked - final.keys() - dead),
                       "duplicates": sum(final.values()) - len(final)}

    def kills(self, phase: Phase) -> None:
        self.sink.configure(failure_rate=0.05, delay=(0.0, 0.03), down=False)
        self.start_router(self.config())
        kills = 0

        def kill() -> float:
            nonlocal kills
            self.kill_router()
            kills += 1
            self.start_router(self.config())
            return self.rng.uniform(0.2, 2.0)

        with self.load(phase):
            self.run_for(phase.seconds, kill, first=self.rng.uniform(0.2, 2.0))
        self.wait_delivered(phase)
        self.stop_router()
        phase.notes.append(f"{kills} kill -9")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def report(phases: list[Phase], sink: FlakySink, dead_now: set[bytes]) -> int:
    """Print the table; returns spans lost in total."""
    counts = sink.snapshot()
    distinct: Counter[int] = Counter()
    duplicates: Counter[int] = Counter()
    for span_id, n in counts.items():
        distinct[phase_of(span_id)] += 1
        duplicates[phase_of(span_id)] += n - 1
    header = (f"{'phase':<40} {'acknowledged':>12} {'delivered':>10} {'dead-lettered':>13} {'replayed':>9} "
              f"{'lost':>7} {'duplicates':>10}")
    print(header)
    print("-" * len(header))
    total = Counter[str]()
    rows: list[tuple[str, dict[str, int]]] = []
    for phase in phases:
        phase.dead |= {i for i in dead_now if phase_of(i) == phase.index}
        delivered = phase.acked - sink.undelivered(phase.acked)
        row = {"acked": len(phase.acked), "delivered": len(delivered), "dead": len(phase.dead & phase.acked),
               "replayed": len(phase.replayed), "lost": len(phase.acked - delivered - phase.dead),
               "duplicates": duplicates[phase.index]}
        rows.append((f"{phase.label} {phase.title}", row))
        if phase.store is not None:
            rows.append((f"{phase.label} ... {phase.store_title}", phase.store))
        if phase.late:
            came = len(phase.late) - len(sink.undelivered(phase.late))
            phase.notes.append(f"of the {len(phase.late):,} spans late after the load, {came:,} arrived later"
                               + (" (after a restart: the spool kept them)" if came else ""))
        extra = distinct[phase.index] - len(delivered)
        if extra:
            phase.notes.append(f"{extra:,} spans delivered that were never acknowledged (requests cut off)")
    for name, row in rows:
        total.update(row)
        print(f"{name:<40} {row['acked']:>12,} {row['delivered']:>10,} {row['dead']:>13,} {row['replayed']:>9,} "
              f"{row['lost']:>7,} {row['duplicates']:>10,}")
    print("-" * len(header))
    print(f"{'total':<40} {total['acked']:>12,} {total['delivered']:>10,} {total['dead']:>13,} "
          f"{total['replayed']:>9,} {total['lost']:>7,} {total['duplicates']:>10,}")
    print()
    for phase in phases:
        for note in phase.notes:
            print(f"phase {phase.label}: {note}")
        for failure in phase.failed:
            print(f"phase {phase.label}: FAILED: {failure}")
    return total["lost"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="total length, all phases (default 3)")
    parser.add_argument("--spans", type=int, default=20, help="spans per request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain-timeout", type=float, default=DRAIN_TIMEOUT,
                        help="seconds to wait after each phase's load for its spans to arrive (default 20)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (kept anyway on failure)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    # About 70% of the time under load; starts, drains, the outage's tail and the replay take the rest.
    load = args.minutes * 60 * 0.7
    phases = [Phase(1, "1", "flaky sink, max_in_flight 4", max(3.0, load * 0.18)),
              Phase(2, "2", "reloads (SIGHUP, otlp-router reload)", max(3.0, load * 0.18)),
              Phase(3, "3", "outage, dead letter, replay", max(MAX_ELAPSED + 6.0, load * 0.22)),
              Phase(4, "4a", "unwritable local store (permanent)", max(2 * TRACE_IDLE + 2.0, load * 0.09)),
              Phase(5, "4b", "unreachable S3 store (retryable)", max(3 * TRACE_IDLE + 3.0, load * 0.11)),
              Phase(6, "5", "kill -9", max(3.0, load * 0.22))]
    steps = [Bench.flaky, Bench.reloads, Bench.outage, Bench.sigterm_unwritable_store, Bench.sigterm_unreachable_s3,
             Bench.kills]
    workdir = Path(tempfile.mkdtemp(prefix="otlp-router-reliability-"))
    bench = Bench(args, workdir)
    progress(f"work directory {workdir}; seed {args.seed}; load {sum(p.seconds for p in phases):.0f}s over "
             f"{len(phases)} phases")
    try:
        for phase, step in zip(phases, steps, strict=True):
            progress(f"phase {phase.label}: {phase.title}, {phase.seconds:.1f}s of load")
            bench.phase = phase
            phase_started = time.monotonic()
            try:
                step(bench, phase)
            except Exception as e:  # noqa: BLE001 - one broken phase must not hide the others' results
                tail = " | ".join(str(e).strip().splitlines()[-2:])
                phase.failed.append(f"broke off: {type(e).__name__}: {tail[-400:]}")
                progress(f"phase {phase.label} broke off: {type(e).__name__}: {tail[-400:]}")
                if bench.target.router is not None and bench.router.proc.poll() is None:
                    bench.stop_router(checked=False)
            phase.notes.insert(0, f"took {time.monotonic() - phase_started:.0f}s, {phase.sent:,} requests sent")
        dead_now, _ = bench.dead_letter_ids()
        print(f"reliability: {args.minutes:g} min requested, {time.monotonic() - started:.0f}s taken, "
              f"seed {args.seed}, {args.spans} spans a request, shutdown_timeout {SHUTDOWN_TIMEOUT:g}s")
        lost = report(phases, bench.sink, dead_now)
    finally:
        bench.cleanup()
    failed = lost > 0 or any(p.failed for p in phases)
    print(f"\nlost: {lost:,}  failed checks: {sum(len(p.failed) for p in phases)}  "
          f"router logs: {workdir / 'logs' if failed or args.keep else 'removed'}")
    if not (failed or args.keep):
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
