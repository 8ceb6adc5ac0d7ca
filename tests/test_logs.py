"""Logs: JSON lines, secrets masked, repeats held back."""

from __future__ import annotations

import logging

import orjson

from otlp_router import config, logs


def _record(msg: str, *args: object, level: int = logging.WARNING, line: int = 1) -> logging.LogRecord:
    return logging.LogRecord("otlp_router.x", level, "f.py", line, msg, args, None)


def test_json_lines() -> None:
    doc = orjson.loads(logs.JsonFormatter().format(_record("destination %s: failing", "axiom")))
    assert doc["level"] == "WARNING" and doc["logger"] == "otlp_router.x"
    assert doc["message"] == "destination axiom: failing" and doc["time"].endswith("Z")


def test_configured_secrets_are_masked() -> None:
    cfg = config.parse("""
routes: [{name: all, destinations: [axiom]}]
destinations:
  axiom: {type: otlp_http, endpoint: "https://api.axiom.co/v1/traces",
          headers: {Authorization: "Bearer xaat-secret-token", X-Axiom-Dataset: traces}}
""")
    assert "xaat-secret-token" in cfg.secrets
    mask = logs.MaskSecrets(cfg.secrets)
    record = _record("sent with %s", "Bearer xaat-secret-token")
    mask.filter(record)
    assert "xaat-secret-token" not in record.getMessage() and "****" in record.getMessage()


def test_repeats_are_held_back_and_counted() -> None:
    limit = logs.RateLimitRepeats(interval=60)
    assert limit.filter(_record("retry %d", 1))
    assert not limit.filter(_record("retry %d", 2))
    assert not limit.filter(_record("retry %d", 3))
    assert limit.filter(_record("other message"))
    limit._seen[("otlp_router.x", "retry %d", 1)][0] -= 61
    record = _record("retry %d", 4)
    assert limit.filter(record) and "2 similar message(s) held back" in record.getMessage()
