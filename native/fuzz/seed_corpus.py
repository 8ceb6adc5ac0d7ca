"""Seed corpora of the fuzz targets from the golden JSON codec cases.

    python native/fuzz/seed_corpus.py      # writes native/fuzz/corpus/json_to_wire/ (git-ignored)
    cd native/fuzz && cargo +nightly fuzz run json_to_wire -- -max_total_time=300 -max_len=20000
    cd native/fuzz && cargo +nightly fuzz run json_fast corpus/json_to_wire -- -max_total_time=300 -max_len=20000

The first byte of a fuzz input picks the root message (see fuzz_targets/json_to_wire.rs).
With the native core importable (PYTHONPATH=. after building it), the same requests as
protobuf also seed corpus/wire_inspect/ (first byte: 0 traces, 1 logs, 2 metrics):

    cd native/fuzz && cargo +nightly fuzz run wire_inspect -- -max_total_time=180 -max_len=20000
"""

import base64
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOTS = {"opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest": 0,
         "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest": 1,
         "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest": 2,
         "opentelemetry.proto.common.v1.AnyValue": 3, "opentelemetry.proto.trace.v1.Span": 4}

out = Path(__file__).resolve().parent / "corpus" / "json_to_wire"
out.mkdir(parents=True, exist_ok=True)
n = 0
for path in sorted((ROOT / "tests" / "golden" / "json_codec").glob("*.jsonl")):
    for line in path.read_text().splitlines():
        case = json.loads(line)
        if case["kind"] == "decode" and case["type"] in ROOTS:
            body = base64.b64decode(case["body"])
            if len(body) <= 20000:
                data = bytes([ROOTS[case["type"]]]) + body
                (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
                n += 1
print(f"{out}: {n} seeds")

try:
    from otlp_router import _native
except ImportError:
    _native = None
if _native is not None:
    wire_out = out.parent / "wire_inspect"
    wire_out.mkdir(parents=True, exist_ok=True)
    m = 0
    for seed in out.iterdir():
        data = seed.read_bytes()
        if data[0] > 2:
            continue
        name = next(k for k, v in ROOTS.items() if v == data[0])
        try:
            wire = _native.json_to_proto(name, data[1:])
        except ValueError:
            continue
        data = bytes([data[0]]) + wire
        (wire_out / hashlib.sha1(data).hexdigest()).write_bytes(data)
        m += 1
    print(f"{wire_out}: {m} seeds")

# The shaping goldens' requests seed corpus/shaping_sample/ (first byte: bit 0 logs, the rest
# sampling by session and which decisions) and corpus/shaping_redact/ (first byte mod 3: the
# signal; bits 2 and 3: masks, keys) and corpus/shaping_actions/ (first byte mod 3: the signal;
# the rest: how many of its actions run).
for target, selector in (("shaping_sample", {"traces": 0, "logs": 3}),
                         ("shaping_redact", {"traces": 12, "logs": 13, "metrics": 14}),
                         ("shaping_actions", {"traces": 20, "logs": 21, "metrics": 23})):
    shaping_out = out.parent / target
    shaping_out.mkdir(parents=True, exist_ok=True)
    k = 0
    for line in (ROOT / "tests" / "golden" / "shaping" / "requests.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["signal"] in selector:
            data = bytes([selector[case["signal"]]]) + base64.b64decode(case["wire"])
            (shaping_out / hashlib.sha1(data).hexdigest()).write_bytes(data)
            k += 1
    print(f"{shaping_out}: {k} seeds")
