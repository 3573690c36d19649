"""Scrubbing: secrets removed from requests and responses before they are written, logged or journaled.

Runs inside the mock container (standard library and vcrpy only).
"""
from __future__ import annotations

import functools
import gzip
import json
import re
import zlib
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import collapse_rfc2231_value
from urllib.parse import parse_qsl, urlencode

from vcr import filters
from vcr.request import Request

REDACTED = "REDACTED"
DEFAULT_SCRUB_HEADERS = ["Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization", "X-Api-Key", "Api-Key",
                         "X-Auth-Token", "X-Access-Token"]
SECRET_HEADER = re.compile(r"(api[-_]?key|auth[-_]?token|access[-_]?token|secret)", re.I)
DEFAULT_SCRUB_QUERY = ["api_key", "apikey", "token", "access_token", "refresh_token", "key", "secret"]
DEFAULT_SCRUB_BODY_KEYS = ["api_key", "apikey", "token", "access_token", "refresh_token", "password", "secret",
                           "client_secret"]  # JSON keys and form fields alike


class Scrubber:
    """Removes secrets from requests and responses before they are written or matched.

    Secret keys are redacted alike in JSON bodies, in form bodies (urlencoded fields and
    multipart form-data parts) and, for the query's names, in the URL.
    """

    def __init__(self, headers: list[str], query: list[str], json_keys: list[str]) -> None:
        self.headers = {h.lower() for h in DEFAULT_SCRUB_HEADERS + headers}
        self.query = DEFAULT_SCRUB_QUERY + query
        self.body_keys = {k.lower() for k in DEFAULT_SCRUB_BODY_KEYS + json_keys}

    def _secret_header(self, name: str) -> bool:
        return name.lower() in self.headers or bool(SECRET_HEADER.search(name))

    def request(self, request: Request) -> Request:
        # A copy, the caller's request left as it is (vcrpy's filters set whole attributes):
        # cheaper than a deep copy, which the replay path would pay on every request.
        request = Request(request.method, request.uri, request.body, dict(request.headers))
        secret = [(name, REDACTED) for name in list(request.headers) if self._secret_header(name)]
        if secret:
            request = filters.replace_headers(request, secret)
        request = filters.replace_query_parameters(request, [(name, REDACTED) for name in self.query])
        if request.body:
            request.body = self._body(request.body, request.headers.get("Content-Type") or "")
        return request

    def response(self, response: dict) -> dict:
        headers = response.get("headers") or {}
        for name in list(headers):
            if self._secret_header(name):
                headers[name] = [REDACTED for _ in headers[name]]
        content_type = " ".join(_header(headers, "Content-Type"))
        body = response.get("body", {}).get("string")
        if body and _media_type(content_type)[0] in SCRUBBED_BODIES:
            encoding = " ".join(_header(headers, "Content-Encoding")).lower()
            try:
                if "gzip" in encoding:
                    plain = gzip.decompress(body)
                    scrubbed = self._body(plain, content_type)
                    if scrubbed != plain:  # otherwise keep the recorded bytes exactly
                        response["body"]["string"] = gzip.compress(scrubbed, mtime=0)
                elif "deflate" in encoding:
                    plain = zlib.decompress(body)
                    scrubbed = self._body(plain, content_type)
                    if scrubbed != plain:
                        response["body"]["string"] = zlib.compress(scrubbed)
                elif not encoding:
                    response["body"]["string"] = self._body(body, content_type)
            except (OSError, zlib.error):
                pass  # not really compressed as it claims: leave it as it is
        return response

    def _body(self, body: bytes | str, content_type: str) -> bytes:
        """The body with secret keys redacted; the very same bytes when there are none."""
        raw = body.encode() if isinstance(body, str) else body
        kind, boundary = _media_type(content_type)
        if kind == "json":
            return self._json_bytes(raw)
        if kind == "form":
            return self._form_bytes(raw)
        if kind == "multipart" and boundary:
            return self._multipart_bytes(raw, boundary)
        return raw

    def _json_bytes(self, raw: bytes) -> bytes:
        if raw.isascii() and b"\\" not in raw and self._no_key_in(raw):  # its keys are its text as it is
            return raw
        try:
            data = json.loads(raw)
        except ValueError:
            return raw
        scrubbed = self._scrub_json(data)
        return raw if scrubbed == data else json.dumps(scrubbed).encode()

    def _no_key_in(self, text: bytes) -> bool:
        """Whether none of the secret keys is in `text`: an ASCII body as its parser would read it.

        When the keys are in the body as they are (ASCII, no escapes), none can be a secret one
        unless its name is in the text: no need to parse it (replay speed).
        """
        lowered = text.lower()
        return not any(key.encode() in lowered for key in self.body_keys)

    def _scrub_json(self, value):
        if isinstance(value, dict):
            return {k: (REDACTED if k.lower() in self.body_keys else self._scrub_json(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub_json(v) for v in value]
        return value

    def _form_bytes(self, raw: bytes) -> bytes:
        if raw.isascii() and b"%" not in raw and self._no_key_in(raw.replace(b"+", b" ")):  # parse_qsl's '+'
            return raw
        try:
            fields = parse_qsl(raw.decode(), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return raw
        if not any(name.lower() in self.body_keys for name, _ in fields):
            return raw
        return urlencode([(name, REDACTED if name.lower() in self.body_keys else value) for name, value in fields]).encode()

    def _multipart_bytes(self, raw: bytes, boundary: str) -> bytes:
        """Each secret part's content replaced; the framing (RFC 2046: CRLF--boundary) kept as it was."""
        delimiter = b"--" + boundary.encode()
        parts = raw.split(delimiter)
        changed = False
        for index in range(1, len(parts) - 1):  # the first is the preamble, the last the closing '--'
            head, gap, _ = parts[index].partition(b"\r\n\r\n")
            if gap and (_part_name(head) or "").lower() in self.body_keys:
                parts[index] = head + gap + REDACTED.encode() + b"\r\n"
                changed = True
        return delimiter.join(parts) if changed else raw


SCRUBBED_BODIES = ("json", "form", "multipart")


@functools.lru_cache(maxsize=256)  # a mock sees the same few Content-Types again and again
def _media_type(content_type: str) -> tuple[str, str | None]:
    """What kind of body a Content-Type announces (json, form, multipart, or other), and its boundary."""
    message = Message()
    message["Content-Type"] = content_type or "application/octet-stream"
    media = message.get_content_type()
    if "json" in media:
        return "json", None
    if media == "application/x-www-form-urlencoded":
        return "form", None
    if media == "multipart/form-data":
        return "multipart", message.get_boundary()
    return "other", None


def _part_name(head: bytes) -> str | None:
    """The field name in a multipart part's Content-Disposition."""
    headers = BytesHeaderParser().parsebytes(head.lstrip(b"\r\n"))
    name = headers.get_param("name", header="content-disposition")
    return collapse_rfc2231_value(name) if name else None


def _header(headers: dict, name: str) -> list[str]:
    for key, values in headers.items():
        if key.lower() == name.lower():
            return values if isinstance(values, list) else [values]
    return []

