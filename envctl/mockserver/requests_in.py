"""Reading a request's line and headers as http.server does, without the email parser it uses.

`BaseHTTPRequestHandler.parse_request` hands the header lines to `email.parser`, which was
two thirds of a replayed request's time. `LeanParsing.parse_request` is the standard
library's (Python 3.11), step for step: the same request-line checks and errors, the same
limits on header lines (65536 bytes, 100 headers, answered 431), and headers built as
email's FeedParser with the compat32 policy builds them: lines split at CR, LF or CRLF,
folded lines joined, a line that is no header ending them, `From ` lines left out. The
result is the same `http.client.HTTPMessage`; tests/unit/test_mock_requests_in.py holds the
two side by side. Runs inside the mock container (standard library only).
"""
from __future__ import annotations

import re
from http import HTTPStatus
from http.client import HTTPException, HTTPMessage, LineTooLong

MAX_LINE = 65536  # http.client's _MAXLINE
MAX_HEADERS = 100  # http.client's _MAXHEADERS
HEADER_LINE = re.compile(r"^(From |[\041-\071\073-\176]*:|[\t ])")  # email.feedparser's headerRE
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def read_header_lines(rfile) -> list[bytes]:
    """The header lines up to the blank one, as http.client._read_headers reads them (and fails)."""
    lines = []
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def split_lines(text: str) -> list[str]:
    """`text` in lines that keep their line ends, as FeedParser cracks its input."""
    lines, start = [], 0
    for end in LINE_BREAK.finditer(text):
        lines.append(text[start:end.end()])
        start = end.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def header_fields(lines: list[str]) -> list[tuple[str, str]]:
    """(name, value) pairs as FeedParser's _parse_headers and compat32's header_source_parse make them."""
    fields: list[tuple[str, str]] = []
    current: list[str] = []
    for number, line in enumerate(lines):
        if line[0] in " \t":  # a folded line continues the header before it (one with none is dropped)
            if current:
                current.append(line)
            continue
        if current:
            fields.append(_field(current))
            current = []
        if line.startswith("From "):
            if number == len(lines) - 1:
                break
            continue  # an envelope line: not a header
        if line.find(":") > 0:
            current = [line]
    if current:
        fields.append(_field(current))
    return fields


def _field(source: list[str]) -> tuple[str, str]:
    name, value = source[0].split(":", 1)
    value = value.lstrip(" \t") + "".join(source[1:])
    return name, value.rstrip("\r\n")


def parse_headers(raw_lines: list[bytes]) -> HTTPMessage:
    """The HTTPMessage http.client.parse_headers would make of these lines."""
    lines = []
    for line in split_lines(b"".join(raw_lines).decode("iso-8859-1")):
        if not HEADER_LINE.match(line):
            break  # the blank line, or a line that is no header: the headers end there
        lines.append(line)
    message = HTTPMessage()
    for name, value in header_fields(lines):
        message[name] = value
    return message


class LeanParsing:
    """A `BaseHTTPRequestHandler` mix-in: `parse_request` without the email parser."""

    def parse_request(self) -> bool:
        self.command = None  # set in case of error on the first line
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words or not self._request_line(words):
            return False
        try:
            self.headers = parse_headers(read_header_lines(self.rfile))
        except LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = self.headers.get("Expect", "")
        if (expect.lower() == "100-continue" and self.protocol_version >= "HTTP/1.1"
                and self.request_version >= "HTTP/1.1"):
            return self.handle_expect_100()
        return True

    def _request_line(self, words: list[str]) -> bool:
        """Method, target and version from the request line, or the standard library's error sent."""
        if len(words) >= 3:
            version = words[-1]
            number = _version_number(version)
            if number is None:
                self.send_error(HTTPStatus.BAD_REQUEST, "Bad request version (%r)" % version)
                return False
            if number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if number >= (2, 0):
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                                "Invalid HTTP version (%s)" % version.split("/", 1)[1])
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad request syntax (%r)" % self.requestline)
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, "Bad HTTP/0.9 request type (%r)" % command)
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):  # gh-87389: no open redirect through '//host/path'
            self.path = "/" + self.path.lstrip("/")
        return True


def _version_number(version: str) -> tuple[int, int] | None:
    """(major, minor) of 'HTTP/1.1', or None where http.server answers 'Bad request version'."""
    if not version.startswith("HTTP/"):
        return None
    parts = version.split("/", 1)[1].split(".")
    if len(parts) != 2 or any(not p.isdigit() or len(p) > 10 for p in parts):
        return None
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:  # digits int() does not take ('²'): http.server's ValueError, the same answer
        return None
