"""The mock server's request parsing beside http.server's own: the same headers, the same answers."""
from __future__ import annotations

import io
from http.client import HTTPMessage, parse_headers
from http.server import BaseHTTPRequestHandler

import pytest

from envctl.mockserver.requests_in import LeanParsing, parse_headers as lean_parse_headers, read_header_lines

HEADER_BLOCKS = [
    b"Host: example.com\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n",
    b"\r\n",
    b"",
    b"Host: a\nAccept: */*\n\n",  # bare LF
    b"X-Folded: one\r\n two\r\n\tthree\r\nAfter: yes\r\n\r\n",  # RFC 5322 folding
    b" leading-continuation\r\nHost: a\r\n\r\n",
    b"Set-Cookie: a=1\r\nset-cookie: b=2\r\nSET-COOKIE: c=3\r\n\r\n",  # repeats, cases kept
    b"Empty:\r\nSpaces:    padded   \r\nTab:\tx\r\n\r\n",
    b"Bad Header: has a space\r\nHost: after-the-bad-one\r\n\r\n",  # no header: the headers end there
    b"NoColonHere\r\nHost: a\r\n\r\n",
    b":no-name\r\nHost: a\r\n\r\n",
    b"From someone\r\nHost: a\r\nFrom middle\r\nX: y\r\n\r\n",
    b"Host: a\r\nFrom last\r\n\r\n",
    b"X-Lone-CR: a\rb: c\r\nHost: d\r\n\r\n",
    b"X-Latin: caf\xe9\r\nX-Bytes: \xff\xfe\r\n\r\n",
    b"X: a:b:c\r\nY:: z\r\n\r\n",
    b"Host: a\r\n",  # the connection closed before the blank line
]


def headers_of(message: HTTPMessage) -> list[tuple[str, str]]:
    return list(message.items())


@pytest.mark.parametrize("block", HEADER_BLOCKS)
def test_headers_are_the_ones_http_client_parses(block: bytes) -> None:
    expected = parse_headers(io.BytesIO(block))
    lean = lean_parse_headers(read_header_lines(io.BytesIO(block)))
    assert headers_of(lean) == headers_of(expected)
    assert lean.get("host") == expected.get("host") and lean.get_all("set-cookie") == expected.get_all("set-cookie")


class Standard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def date_time_string(self, timestamp=None) -> str:
        return "then"


class Lean(LeanParsing, Standard):
    pass


def parsed(cls: type, request: bytes) -> tuple:
    handler = cls.__new__(cls)
    handler.rfile, handler.wfile = io.BytesIO(request), io.BytesIO()
    line = handler.rfile.readline(65537)
    handler.raw_requestline = line
    ok = handler.parse_request()
    headers = headers_of(handler.headers) if ok else None
    return (ok, handler.command, getattr(handler, "path", None), handler.request_version, handler.close_connection,
            headers, handler.wfile.getvalue(), handler.rfile.read())


REQUESTS = [
    b"GET /v1/status HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /v1/charges?x=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n",
    b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
    b"GET //evil.example/path HTTP/1.1\r\n\r\n",
    b"GET /\r\n",  # HTTP/0.9
    b"POST /\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET / HTTP/1\r\n\r\n",
    b"GET / FTP/1.1\r\n\r\n",
    b"GET / HTTP/1.\xb2\r\n\r\n",
    b"GET / HTTP/01.1\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET\r\n\r\n",
    b"\r\n",
    b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * 101 + b"\r\n",
]


@pytest.mark.parametrize("request_bytes", REQUESTS)
def test_requests_parse_and_fail_as_http_server_parses_them(request_bytes: bytes) -> None:
    assert parsed(Lean, request_bytes) == parsed(Standard, request_bytes)
