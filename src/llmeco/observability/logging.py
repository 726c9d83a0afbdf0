"""JSON logs with request ids.

Every log line is one JSON object. The request id of the HTTP request being served lives in
a :class:`~contextvars.ContextVar` set by the server's middleware; the formatter adds it to
every line logged while that request is handled (tasks spawned for it copy the context, so
streaming code and engine callbacks on the event loop carry it too).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

#: Request id of the request being served on this task; empty outside a request.
request_id_var: ContextVar[str] = ContextVar("llmeco_request_id", default="")

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")
MAX_REQUEST_ID = 128

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is logged.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


def sanitize_request_id(raw: str | None) -> str:
    """Keep a client's id if it is usable (``[A-Za-z0-9._-]``, ≤128 chars), else make one.

    Disallowed characters are dropped rather than the whole id, so ids with e.g. a colon
    still correlate; an id that ends up empty is replaced by a fresh one.
    """
    cleaned = _SAFE_ID.sub("", raw or "")[:MAX_REQUEST_ID]
    return cleaned or new_request_id()


def new_request_id() -> str:
    """A fresh random request id."""
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send all logging (ours, uvicorn's) as JSON lines to ``stream`` (stderr by default).

    Every line passes :class:`~llmeco.governance.redact.RedactingFilter`, so PII and secrets
    become placeholders. Uvicorn's own access log is silenced: the server's middleware logs
    one line per request with its request id, status and duration instead.
    """
    from llmeco.governance.redact import RedactingFilter

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())  # no e-mails, cards, keys … in the logs
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
