"""Logging: text or JSON lines on stderr, secrets masked, repeats rate-limited."""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable

import orjson

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


JsonFormatter.converter = time.gmtime


class MaskSecrets(logging.Filter):
    """Replaces every configured secret (API keys, header values, S3 keys) by ****."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            masked = message
            for secret in self.secrets:
                masked = masked.replace(secret, "****")
            if masked != message:
                record.msg, record.args = masked, None
        return True


class RateLimitRepeats(logging.Filter):
    """The same message template from the same place at most once per `interval`;
    the next one that passes says how many were held back."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, str, int], list[float]] = {}   # key -> [last shown, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg), record.lineno)
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is None or now - seen[0] >= self.interval:
            if seen and seen[1]:
                record.msg = f"{record.getMessage()} ({int(seen[1])} similar message(s) held back)"
                record.args = None
            self._seen[key] = [now, 0]
            if len(self._seen) > 10_000:
                self._seen.clear()
            return True
        seen[1] += 1
        return False


_mask = MaskSecrets()


def hide(secrets: Iterable[str]) -> None:
    """Never show these values (from the config) in a log line."""
    _mask.secrets = sorted({*_mask.secrets, *(s for s in secrets if s and len(s) >= 4)}, key=len, reverse=True)


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    handler.addFilter(_mask)
    handler.addFilter(RateLimitRepeats())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own start/stop lines would repeat ours, once per listener.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
