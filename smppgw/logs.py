"""Structured logs: one event a line, as key=value or JSON.

Callers log `event(log, "name", key=value, ...)`. Values are quoted when they hold spaces.
Secrets are never passed in: accounts are named by system_id, providers by name.
A worker of `serve --workers N` tags every line of its process with `worker=i` (`tag_process`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Fields every line of this process carries (a worker's number); set once at start.
_process: dict[str, Any] = {}


def tag_process(**fields: Any) -> None:
    """Add fields to every log line of this process, whatever `setup` is called with later."""
    _process.update(fields)


def _kv(value: Any) -> str:
    s = str(value)
    if not s or any(c in s for c in ' ="\n'):
        return json.dumps(s, ensure_ascii=False)
    return s


class KvFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        head = f"ts={ts} level={record.levelname.lower()} logger={record.name}"
        if _process:
            head += "".join(f" {k}={_kv(v)}" for k, v in _process.items())
        if fields is not None:
            body = " ".join(f"{k}={_kv(v)}" for k, v in fields.items())
        else:
            body = "msg=" + _kv(record.getMessage())
        line = f"{head} {body}"
        if record.exc_info:
            line += " exc=" + _kv(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": record.created, "level": record.levelname.lower(), "logger": record.name}
        out.update(_process)
        fields = getattr(record, "fields", None)
        out.update(fields if fields is not None else {"msg": record.getMessage()})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": {"event": name, **fields}})


def setup(level: str = "info", fmt: str = "kv") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KvFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry full URLs (keys)
