"""A mock's recorded interactions: loaded, matched, played and appended through vcrpy's public API.

Loading and saving go through vcrpy's `FilesystemPersister` and `serialize`, matching through
`vcr.matchers`; play counts are kept here. Appending never rewrites what was recorded before:
new interactions are spliced into the cassette's text, so `git diff` shows only them.
Runs inside the mock container (standard library and vcrpy only).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import vcr.matchers
from vcr.persisters.filesystem import CassetteNotFoundError, FilesystemPersister
from vcr.request import Request
from vcr.serialize import deserialize, serialize
from vcr.serializers import jsonserializer, yamlserializer

from .fielddiff import body_diff, limited, mapping_diff
from .volatile import VolatileFields

SUFFIXES = (".yaml", ".yml", ".json")
# Matchers that read only the method and the URI's scheme, host, port and path: neither
# scrubbing nor volatile fields change what they compare.
ROUTE_MATCHERS = {"method", "path", "host", "port", "scheme"}
MAX_REMEMBERED = 4096  # distinct requests whose matches are remembered; then it starts again


def serializer_for(path: Path):
    return jsonserializer if path.suffix == ".json" else yamlserializer


@dataclass
class Interaction:
    cassette: str  # the file's name, for reports
    index: int
    request: Request  # as recorded
    response: dict
    key: Request  # the request as matching sees it: volatile fields left out
    origin: str  # scheme://host:port the cassette was recorded from
    plays: int = 0
    latency_ms: float | None = None  # as recorded, when the cassette says


def load_file(path: Path) -> tuple[list[Request], list[dict]]:
    try:
        loaded = FilesystemPersister.load_cassette(str(path), serializer_for(path))
    except CassetteNotFoundError:  # missing or empty: nothing recorded yet
        return [], []
    return loaded[0], loaded[1]


def origin_of(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


class Library:
    """Every interaction of one mock, with play counts; thread-safe."""

    def __init__(self, files: list[Path], match_on: list[str], allow_repeats: bool, volatile: VolatileFields,
                 fallback_origin: str, scrub: Callable[[Request], Request] = lambda request: request) -> None:
        # Both sides are compared scrubbed (as vcrpy's before_record_request hook would): a
        # recorded `api_key=REDACTED` matches today's real key, and diagnostics show no secret.
        self.scrub = scrub
        self.matchers = tuple(getattr(vcr.matchers, name) for name in match_on)
        # When method and path must match, only interactions of that route are candidates: a
        # dictionary look-up instead of every matcher on every interaction (replay speed).
        self.by_route: dict[tuple[str, str], list[Interaction]] | None = (
            {} if {"method", "path"} <= set(match_on) else None)
        self.allow_repeats = allow_repeats
        self.route_only = set(match_on) <= ROUTE_MATCHERS
        self.volatile = volatile
        self.lock = threading.Lock()
        self.interactions: list[Interaction] = []
        # What each request seen before matched, by what matching compares (replay speed: vcrpy's
        # body matcher builds a diff for every interaction that does not match). Matching is a
        # pure function of the two requests, so the answer holds until an interaction is added.
        self.matched: dict[tuple, list[Interaction]] = {}
        self.origins: dict[str, str] = {}  # cassette name -> origin it is matched at
        self.fallback_origin = fallback_origin
        for path in files:
            requests, responses = load_file(path)
            origin = origin_of(requests[0].uri) if requests else fallback_origin
            self.origins[path.name] = origin
            for request, response in zip(requests, responses):
                self._add(path.name, request, response, origin)

    @property
    def origin(self) -> str:
        """Where an incoming request is placed when it is described: the first cassette's origin."""
        return next(iter(self.origins.values()), self.fallback_origin)

    def _add(self, cassette: str, request: Request, response: dict, origin: str, plays: int = 0) -> Interaction:
        index = sum(1 for i in self.interactions if i.cassette == cassette)
        interaction = Interaction(cassette, index, request, response, self._key(request), origin,
                                  plays, _recorded_latency(response))
        self.interactions.append(interaction)
        self.matched.clear()  # a request seen before could match the new one too
        if self.by_route is not None:
            self.by_route.setdefault(_route(interaction.key), []).append(interaction)
        return interaction

    def add_recorded(self, cassette: str, request: Request, response: dict) -> Interaction:
        """An interaction just recorded: playable from now on, already played once."""
        with self.lock:
            self.origins.setdefault(cassette, origin_of(request.uri))
            return self._add(cassette, request, response, self.origins[cassette], plays=1)

    def incoming(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                 whole: bool = False) -> dict[str, Request]:
        """The request placed at each origin the cassettes were recorded from, for matching.

        When the matchers read only the route, that is all the request holds (replay speed: no
        scrubbing, which could not change it); `whole` asks for all of it, scrubbed, to be shown.
        """
        origins = set(self.origins.values()) or {self.fallback_origin}
        if self.route_only and not whole:
            return {o: Request(method, o + path, None, {}) for o in origins}
        return {o: self._key(Request(method, o + path, body, headers)) for o in origins}

    def _key(self, request: Request) -> Request:
        return self.volatile.for_matching(self.scrub(request))

    def _candidates(self, at: dict[str, Request]) -> list[Interaction]:
        if self.by_route is None:
            return self.interactions
        return self.by_route.get(_route(next(iter(at.values()))), [])

    def play(self, at: dict[str, Request]) -> Interaction | None:
        """The first unplayed match; with repeats allowed, then the first match again."""
        with self.lock:
            matches = self._matches(at)
            for interaction in matches:
                if interaction.plays == 0:
                    interaction.plays = 1
                    return interaction
            if matches and self.allow_repeats:
                matches[0].plays += 1
                return matches[0]
        return None

    def _matches(self, at: dict[str, Request]) -> list[Interaction]:
        """Every interaction `at` matches, in cassette order (the caller holds the lock)."""
        seen = tuple(sorted((origin, _fingerprint(key)) for origin, key in at.items()))
        matches = self.matched.get(seen)
        if matches is None:
            matches = [interaction for interaction in self._candidates(at)
                       if vcr.matchers.requests_match(at[interaction.origin], interaction.key, self.matchers)]
            if len(self.matched) >= MAX_REMEMBERED:
                self.matched.clear()
            self.matched[seen] = matches
        return matches

    def closest(self, at: dict[str, Request], limit: int = 3) -> list[tuple[Interaction, dict[str, str]]]:
        """The interactions most like the request, each with why it did not match."""
        scored = []
        with self.lock:
            for interaction in self.interactions:
                passed, failed = vcr.matchers.get_matchers_results(at[interaction.origin], interaction.key,
                                                                  self.matchers)
                reasons = {name: str(reason or "").strip()[:300] for name, reason in failed}
                if not failed and interaction.plays and not self.allow_repeats:
                    reasons["already played"] = (f"it matches, but was played {interaction.plays} time(s) "
                                                 "and allow_repeats is false")
                scored.append((len(passed), -interaction.plays, interaction, reasons))
        scored.sort(key=lambda item: (-item[0], -item[1]))
        return [(interaction, reasons) for _, _, interaction, reasons in scored[:limit]]

    def reset(self) -> None:
        with self.lock:
            for interaction in self.interactions:
                interaction.plays = 0


def _fingerprint(request: Request) -> tuple:
    """All a matcher can read of a request: equal fingerprints, equal answers from every matcher."""
    body = request.body
    return (request.method, request.uri, body.getvalue() if hasattr(body, "getvalue") else body,
            tuple(request.headers.items()))


def _route(request: Request) -> tuple[str, str]:
    return request.method, request.path or "/"  # as vcrpy's path matcher: an empty path is "/"


def request_diff(sent: Request, recorded: Request, match_on: list[str]) -> list[str]:
    """What differs, field by field, in the parts of the request `match_on` compares."""
    out = []
    if "method" in match_on and sent.method != recorded.method:
        out.append(f"method: recorded {recorded.method}, sent {sent.method}")
    if ({"path", "uri"} & set(match_on)) and sent.path != recorded.path:
        out.append(f"path: recorded {recorded.path}, sent {sent.path}")
    if {"query", "uri"} & set(match_on):
        out += mapping_diff("query", dict(recorded.query), dict(sent.query))
    if "headers" in match_on:
        out += mapping_diff("header", dict(recorded.headers), dict(sent.headers))
    if {"body", "raw_body"} & set(match_on):
        out += body_diff(recorded.body, sent.body)
    return limited(out)


def _recorded_latency(response: dict) -> float | None:
    value = (response.get("envctl") or {}).get("latency_ms") if isinstance(response, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def cassette_files(root: Path) -> list[Path]:
    if root.is_dir():
        return sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    return [root] if root.exists() else []


class CassetteAppender:
    """Appends interactions to one cassette file, leaving what it already holds byte for byte.

    YAML cassettes get the new interactions spliced in before their closing `version: 1`;
    the result is read back with vcrpy and, should it not hold every interaction, the whole
    cassette is written again through vcrpy instead (nothing is ever lost, only the bytes
    could move). JSON cassettes are always written whole: JSON has no splice point.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.serializer = serializer_for(path)
        self.lock = threading.Lock()

    def append(self, request: Request, response: dict) -> None:
        with self.lock:
            old_text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
            requests, responses = load_file(self.path) if old_text.strip() else ([], [])
            new_text = self._spliced(old_text, request, response) if self.serializer is yamlserializer else None
            if new_text is None or not self._holds(new_text, len(requests) + 1):
                new_text = serialize({"requests": [*requests, request], "responses": [*responses, response]},
                                     self.serializer)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.partial")
            temporary.write_text(new_text, encoding="utf-8")
            temporary.replace(self.path)  # a killed mock leaves the old cassette or the new, never half of one

    def _spliced(self, old_text: str, request: Request, response: dict) -> str | None:
        alone = serialize({"requests": [request], "responses": [response]}, self.serializer)
        head, separator, rest = alone.partition("interactions:\n")
        items, closing, _ = rest.rpartition("version: 1\n")
        if not separator or not closing:
            return None
        if not old_text.strip():
            return alone
        if "\ninteractions: []\n" in "\n" + old_text:
            return ("\n" + old_text).replace("\ninteractions: []\n", "\ninteractions:\n" + items, 1)[1:]
        if old_text.endswith("version: 1\n") and old_text.startswith("interactions:\n"):
            return old_text[: -len("version: 1\n")] + items + "version: 1\n"
        return None

    def _holds(self, text: str, count: int) -> bool:
        try:
            loaded = deserialize(text, self.serializer)
        except Exception:  # noqa: BLE001 - any failure to read it back means: write it whole
            return False
        return len(loaded[0]) == count
