"""Reliability run (not a test): kill -9 the router at random moments under a
steady load of acknowledged requests, restart it, and repeat for minutes;
then count what was acknowledged, delivered, duplicated and lost (must be 0).

    python bench/reliability.py --minutes 3

It reuses the test suite's real parts: the router as a process on port-0
endpoints and a downstream OTLP/HTTP server that records span ids."""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.downstream import HttpSink  # noqa: E402
from tests.support import AckedLoad, RouterProcess, base_config  # noqa: E402

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--spans", type=int, default=20, help="spans per request")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="otlp-router-reliability-"))
    sink = HttpSink()
    config = base_config(workdir, destinations={"down": {
        "type": "otlp_http", "endpoint": sink.url, "batch": {"flush_interval": "10ms"},
        "retry": {"initial_interval": "50ms", "max_interval": "500ms", "max_elapsed": "0s"}}})
    current = [RouterProcess(config, workdir)]
    load = AckedLoad(current, args.spans)
    load.start()
    kills = 0
    deadline = time.monotonic() + args.minutes * 60
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.2, 2.0))
        current[0].proc.send_signal(signal.SIGKILL)
        current[0].kill()
        kills += 1
        current[0] = RouterProcess(config, workdir)
        print(f"\rkills: {kills}  acknowledged spans: {len(load.acked):,}", end="", file=sys.stderr, flush=True)
    load.done.set()
    load.join(10)
    drain_deadline = time.monotonic() + 60
    while time.monotonic() < drain_deadline and not load.acked <= sink.span_ids():
        time.sleep(0.2)
    current[0].stop()
    delivered = sink.span_ids()
    received = len(sink.spans())
    lost = load.acked - delivered
    print(file=sys.stderr)
    print(f"minutes: {args.minutes}  kill -9: {kills}  requests sent: {load.sent:,}")
    print(f"spans acknowledged: {len(load.acked):,}")
    print(f"spans delivered (distinct): {len(delivered):,}  (also delivered but never acknowledged: "
          f"{len(delivered - load.acked):,})")
    print(f"duplicates delivered: {received - len(delivered):,}")
    print(f"lost: {len(lost):,}")
    sink.close()
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
