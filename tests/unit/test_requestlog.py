"""Log fields escaped and bounded; rate limits for logs an error can repeat in a loop."""

from __future__ import annotations

import io
import logging

from hypothesis import given
from hypothesis import strategies as st

from webhook.requestlog import RateLimit, RateLimitFilter, RequestLog, field, one_line


@given(st.text(max_size=400))
def test_a_field_is_one_token_and_bounded(text):
    out = field(text)
    assert " " not in out.split("...(+")[0] or out.startswith('"')
    assert "\n" not in out and "\r" not in out and "\u2028" not in out
    assert len(out) <= 6 * 256 + 20
    if text and len(text) <= 256 and out[0] != '"':
        assert out == text


def test_field_quotes_what_could_split_or_forge_a_line():
    assert field("0b9c2f6e-1111") == "0b9c2f6e-1111"
    assert field("a b") == '"a b"'
    assert field("x\nuid=forged") == '"x\\nuid=forged"'
    assert field("") == '""'
    assert field("u" * 300) == "u" * 256 + "...(+44)"


def test_request_log_line_escapes_every_client_field():
    stream = io.StringIO()
    RequestLog(stream).write("a\nb", "ns/name", "patched", 0.0012, detail="GET /x y")
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert line.endswith(' uid="a\\nb" ns/name patched 1.20ms "GET /x y"\n')


def test_one_line_escapes_control_characters_and_cuts():
    assert one_line("a\nb\x1bc") == "a\\x0ab\\x1bc"
    assert one_line("x" * 2000, 10) == "x" * 10 + "...(+1990)"


def test_rate_limit_allows_a_burst_per_period_and_counts_the_rest():
    now = [0.0]
    limit = RateLimit(burst=3, period=10, clock=lambda: now[0])
    assert [limit.allow() for _ in range(5)] == [True, True, True, False, False]
    now[0] = 10.0
    assert limit.allow() is True
    assert limit.take_suppressed() == 2 and limit.take_suppressed() == 0


def test_rate_limit_filter_drops_the_flood_and_tracebacks_and_reports_what_it_dropped():
    now = [0.0]
    stream = io.StringIO()
    logger = logging.getLogger("test.flood")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(RateLimitFilter(burst=2, period=1, clock=lambda: now[0]))
    try:
        for _ in range(1000):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                logger.exception("accept failed\nsecond line")
        now[0] = 5.0
        logger.error("again")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "accept failed\\x0asecond line: OSError: [Errno 24] Too many open files",
        "accept failed\\x0asecond line: OSError: [Errno 24] Too many open files",
        "again (998 similar message(s) suppressed)",
    ]
