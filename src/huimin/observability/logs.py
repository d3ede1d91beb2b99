"""Logs: one JSON object per line on stderr (production), or plain text for developers
(`HUIMIN_LOG_FORMAT=text`). Every line written while a request runs carries its `request_id`.

A JSON line has `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, `request_id`
when there is one, the fields a caller passed in `extra=` (the access log: `method`, `path`, `route`,
`status`, `code`, `duration_ms`, `client_ip`), and `exception` with the traceback.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from huimin.observability.context import current_request_id

__all__ = ["JsonFormatter", "RequestIdFilter", "logging_config"]

# Attributes every LogRecord has: anything else on a record came from `extra=`.
# (`color_message` is uvicorn's copy of the message with terminal colours.)
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


class RequestIdFilter(logging.Filter):
    """Puts the running request's id on every record (`-` outside a request), for both formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id and request_id != "-":
            entry["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD and name != "request_id" and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(style: Literal["json", "text"] = "json", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for `huimin serve` (given to uvicorn, which applies it in every
    worker): the app's loggers and uvicorn's, to stderr, in the chosen format."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "huimin.observability.logs.RequestIdFilter"}},
        "formatters": {
            "json": {"()": "huimin.observability.logs.JsonFormatter"},
            "text": {"format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": style,
                "filters": ["request_id"],
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": level},
    }
