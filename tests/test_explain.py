"""`otlp-router explain` and `otlp-router decode`: what would happen, and what was written, as JSON lines."""

from __future__ import annotations

import subprocess
import sys

import orjson
import yaml

from tests.support import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "genai" / "openrouter.json"


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otlp_router", *args], capture_output=True, timeout=60,
                          cwd=cwd, stdin=subprocess.DEVNULL)


def test_explain_shows_routes_destinations_and_each_view(tmp_path) -> None:
    config = {"spool": {"dir": str(tmp_path / "spool")},
              "routes": [{"name": "llm", "match": {"attribute": "gen_ai.request.model", "exists": True},
                          "destinations": ["private", "open"]},
                         {"name": "rest", "default": True, "destinations": ["open"]}],
              "destinations": {"private": {"type": "file", "dir": str(tmp_path / "p"), "format": "otlp_json",
                                           "privacy": True},
                               "open": {"type": "file", "dir": str(tmp_path / "o"), "format": "otlp_json"}}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(config))
    result = _cli("explain", "-c", str(tmp_path / "r.yaml"), "--json", str(FIXTURE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    entries = [orjson.loads(line) for line in result.stdout.splitlines()]
    generation = next(e for e in entries if e.get("span") == "LLM Generation")
    assert generation["routes"] == ["llm"] and set(generation["destinations"]) == {"private", "open"}
    assert b"SECRET-" not in orjson.dumps(generation["destinations"]["private"])
    assert b"SECRET-" in orjson.dumps(generation["destinations"]["open"])
    assert generation["destinations"]["private"]["attributes"]["gen_ai.usage.input_tokens"] == 1843
    others = [e for e in entries if e.get("span") and e["span"] != "LLM Generation"]
    assert others and all(e["routes"] == ["rest"] and list(e["destinations"]) == ["open"] for e in others)


def test_explain_refuses_what_is_not_otlp_json(tmp_path) -> None:
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"routes": [{"name": "a", "destinations": ["d"]}],
                                                     "destinations": {"d": {"type": "discard"}}}))
    (tmp_path / "bad.json").write_text('{"resourceSpans": 3}')
    result = _cli("explain", "-c", str(tmp_path / "r.yaml"), str(tmp_path / "bad.json"), cwd=tmp_path)
    assert result.returncode == 2 and b"is not OTLP JSON" in result.stderr


def test_decode_prints_stored_exports_as_json_lines(tmp_path) -> None:
    import base64

    from otlp_router.destinations.formats.aperture import encode_records
    records = [{"id": 1, "ver": 2, "capture": {"rawRequestBody": b"{}"}}, {"id": 2, "ver": 2}]
    (tmp_path / "ts-aperture-export-1.cbor.zstd").write_bytes(encode_records(records))
    result = _cli("decode", str(tmp_path / "ts-aperture-export-1.cbor.zstd"), cwd=tmp_path)
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and [r["id"] for r in lines] == [1, 2]
    assert base64.b64decode(lines[0]["capture"]["rawRequestBody"]) == b"{}"
    missing = _cli("decode", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert missing.returncode == 1 and b"nope.json" in missing.stderr


def test_decode_reads_s3_urls(tmp_path, moto) -> None:
    bucket = moto.bucket("decode-me")
    moto.client().put_object(Bucket=bucket, Key="t/abc-1.json", Body=b'{"id": "abc", "observations": []}')
    result = _cli("decode", f"s3://{bucket}/t/abc-1.json", "--endpoint", moto.endpoint, "--access-key-id", "test",
                  "--secret-access-key", "test", "--addressing-style", "path", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"id": "abc", "observations": []}
