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
            # exc_text: the traceback as MaskSecrets left it (masked)
            doc["exception"] = record.exc_text or self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


JsonFormatter.converter = time.gmtime


class MaskSecrets(logging.Filter):
    """Replaces every configured secret (API keys, header values, S3 keys) by ****."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:  # longest first: "Bearer xyz" before "xyz"
            if secret in text:
                text = text.replace(secret, "****")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            masked = self.mask(message)
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_info and not record.exc_text:
                # An exception's text can quote a secret too (a backend's answer):
                # format it here, masked; formatters use exc_text when it is set.
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.mask(record.exc_text)
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
    """Never show these values (from the config) in a log line, nor where `mask` is applied."""
    _mask.secrets = sorted({*_mask.secrets, *(s for s in secrets if s and len(s) >= 4)}, key=len, reverse=True)


def mask(text: str) -> str:
    """`text` with every secret `hide` was given replaced by ****: the log filter's own
    masking, for texts shown elsewhere (the admin port, dead letters), such as a
    backend's error answer that quotes the request's Authorization header."""
    return _mask.mask(text) if _mask.secrets and text else text


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
    # httpx logs every request at INFO: each status poll of the workers and each
    # hand-over between them, and every probe of `check`. Their failures reach our
    # own log as errors of the caller; at any level only their warnings are worth a line.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
