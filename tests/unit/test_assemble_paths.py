"""The engine's answers about a base's paths (what the assembler asks): missing, refused, unreadable."""
from __future__ import annotations

import base64
import json

import pytest

from envctl.backend.engine import Engine
from envctl.errors import EnvctlError


class Response:
    def __init__(self, status: int, body: bytes = b"", mode: int = 1 << 31) -> None:
        self.status_code, self.body, self.closed = status, body, False
        self.headers = {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps({"mode": mode}).encode())}

    def iter_content(self, size: int):
        yield self.body

    def close(self) -> None:
        self.closed = True


class ArchiveAPI:
    """The SDK's low-level client, answering every archive request with `response`."""

    def __init__(self, response: Response) -> None:
        self.response = response

    def _url(self, template: str, *args: str) -> str:
        return template.format(*args)

    def head(self, url: str, params: dict) -> Response:
        return self.response

    def get(self, url: str, params: dict, stream: bool) -> Response:
        return self.response


def engine_answering(response: Response) -> Engine:
    engine = Engine.__new__(Engine)
    engine.client = engine.api = ArchiveAPI(response)  # type: ignore[assignment]
    return engine


def test_a_missing_path_is_none_for_both_questions() -> None:
    missing = Response(404)
    assert engine_answering(missing).path_kind("c", "/app") is None
    assert engine_answering(missing).path_header("c", "/app") is None and missing.closed


@pytest.mark.parametrize("method", ["path_kind", "path_header"])
def test_a_refusal_says_what_could_not_be_looked_at(method: str) -> None:
    with pytest.raises(EnvctlError, match=r"could not look at /app in base:1: HTTP 500"):
        getattr(engine_answering(Response(500)), method)("c", "/app", "base:1")


@pytest.mark.parametrize("body", [b"", b"not a tar archive at all" * 40])
def test_an_archive_that_is_not_a_tar_is_an_error_for_people_not_a_traceback(body: bytes) -> None:
    response = Response(200, body)
    with pytest.raises(EnvctlError, match="the engine's archive of /app in base:1 could not be read") as caught:
        engine_answering(response).path_header("c", "/app", "base:1")
    assert caught.value.fix and response.closed
