"""The apps' log lines: text for people (the default), or one JSON object per line for log
pipelines (`ORDERSAGA_LOG_FORMAT=json`, which `ordersaga up --log-format json` sets).

The apps already write the facts of a saga step as `key=value` pairs in their messages
(`order=o-1 step=reserve attempt=2 outcome=ok`); the JSON formatter lifts those into fields
(`order_id`, `step`, `attempt`, `outcome`, and any others it finds under `fields`), and adds the
trace id of the span the line was logged in, which finds the order's trace in Zipkin. Fields
passed with `extra=` win over parsed ones.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime, timezone

from apphost.observability import current_trace_id

# A value runs up to the next ` key=` (values such as `step=cancel shipment` hold spaces).
_PAIR = re.compile(r"(?:^|(?<=\s))([a-z_]+)=(.*?)(?=\s+[a-z_]+=|$)", re.DOTALL)
_RENAMED = {"order": "order_id"}
_TOP_LEVEL = ("order_id", "step", "attempt", "outcome")
# Attributes every LogRecord has: anything else on a record came with `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def key_values(message: str) -> dict[str, str]:
    """The `key=value` pairs of a log message, in order (`order` is named `order_id`)."""
    return {_RENAMED.get(key, key): value.strip() for key, value in _PAIR.findall(message)}


class JsonFormatter(logging.Formatter):
    def __init__(self, app_id: str):
        super().__init__()
        self._app_id = app_id

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        parsed = key_values(message)
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        fields = {**parsed, **extra}
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "app": self._app_id,
            "logger": record.name,
            "message": message,
        }
        for key in _TOP_LEVEL:
            if key in fields:
                value = fields.pop(key)
                entry[key] = int(value) if key == "attempt" and str(value).isdigit() else value
        trace_id = current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        if fields:
            entry["fields"] = {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
                               for k, v in fields.items()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(app_id: str) -> None:
    """One line per event, with time, app and logger: text, or JSON with ORDERSAGA_LOG_FORMAT=json."""
    level = os.environ.get("ORDERSAGA_LOG_LEVEL", "INFO")
    log_format = os.environ.get("ORDERSAGA_LOG_FORMAT", "text").strip().lower()
    if log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter(app_id))
        logging.basicConfig(level=level, handlers=[handler])
    else:
        logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)-5s {app_id} %(name)s: %(message)s")
    # The Dapr SDK and gRPC are chatty at INFO about internals a reader does not need.
    for noisy in ("durabletask-worker", "durabletask-client", "WorkflowRuntime", "dapr.actor"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
