"""The request log: one line per response, fields escaped and bounded; and rate limits for logs
that an error could repeat in a loop.

Request fields come from whoever sent the request: a uid with a newline would forge a log line,
and a 100,000-character one would write a 100,000-character line. Each field is written bare when
it holds only characters no parser splits on, else JSON-quoted (ASCII escapes), and cut to
`FIELD_LIMIT` characters.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

FIELD_LIMIT = 256
_BARE = re.compile(r"[A-Za-z0-9._:/@+=,()-]*")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str, limit: int = 1024) -> str:
    """Free text for a log line: control characters escaped, at most ~`limit` characters."""
    cut = len(text) - limit
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text[:limit] if cut > 0 else text)
    return f"{text}...(+{cut})" if cut > 0 else text


def field(value: object, limit: int = FIELD_LIMIT) -> str:
    """`value` as one log field: never a space, a control character or more than ~`limit` chars."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    out = text if text and _BARE.fullmatch(text) else json.dumps(text)
    return f"{out}...(+{cut})" if cut > 0 else out


class RequestLog:
    """One line per response: time, uid, namespace/name, outcome, milliseconds[, detail].

    Written straight to the stream: at thousands of requests a second the `logging` module's
    record machinery cost more than deciding the request itself.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._second = -1
        self._stamp = ""

    def write(self, uid: object, name: str, outcome: str, seconds: float,
              detail: str | None = None) -> None:
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        millis = int((now % 1) * 1000)
        stream = self.stream or sys.stderr
        tail = f" {field(detail)}" if detail else ""
        stream.write(
            f"{self._stamp}.{millis:03d}Z uid={field(uid)} {name} {outcome} "
            f"{seconds * 1000:.2f}ms{tail}\n"
        )


class RateLimit:
    """At most `burst` events per `period` seconds; the next allowed one learns how many were not."""

    def __init__(self, burst: int = 5, period: float = 10.0, clock=time.monotonic) -> None:
        self.burst, self.period, self.clock = burst, period, clock
        self._window = float("-inf")
        self._count = 0
        self.suppressed = 0

    def allow(self) -> bool:
        now = self.clock()
        if now - self._window >= self.period:
            self._window, self._count = now, 0
        self._count += 1
        if self._count > self.burst:
            self.suppressed += 1
            return False
        return True

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count


class RateLimitFilter(logging.Filter):
    """For loggers an error can flood (asyncio's accept loop when file descriptors run out, aiohttp's
    per-connection errors): one line per record, no traceback, at most `burst` per `period`."""

    def __init__(self, burst: int = 5, period: float = 10.0, clock=time.monotonic) -> None:
        super().__init__()
        self.limit = RateLimit(burst, period, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.limit.allow():
            return False
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            message = f"{message}: {type(err).__name__}: {err}"
        record.msg, record.args, record.exc_info, record.exc_text = message, None, None, None
        suppressed = self.limit.take_suppressed()
        if suppressed:
            record.msg = f"{message} ({suppressed} similar message(s) suppressed)"
        record.msg = one_line(record.msg)
        return True
