"""The mock's library: matching with volatile fields left out, play counts, and appending that keeps recorded bytes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from vcr.request import Request
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from envctl.mockserver.jsonpath import parse_json_path
from envctl.mockserver.library import CassetteAppender, Library
from envctl.mockserver.volatile import PLACEHOLDER, VolatileFields

ORIGIN = "https://api.example"
JSON = {"Content-Type": "application/json"}


def charge(amount: int, key: str, sent_at: str = "2026-01-01T00:00:00Z") -> Request:
    body = {"amount": amount, "idempotency_key": key, "meta": {"sent_at": sent_at, "items": [{"ts": 1}, {"ts": 2}]}}
    return Request("POST", f"{ORIGIN}/v1/charges?ts=1", json.dumps(body).encode(),
                   {**JSON, "Idempotency-Key": key})


def answer(text: str) -> dict:
    return {"status": {"code": 200, "message": "OK"}, "headers": {"Content-Type": ["application/json"]},
            "body": {"string": text.encode()}}


VOLATILE = VolatileFields.from_config({"json": ["$.idempotency_key", "$.meta.sent_at", "$.meta.items[*].ts"],
                                       "headers": ["Idempotency-Key"], "query": ["ts"]})
MATCH_ON = ["method", "path", "query", "body", "headers"]


def library_with(tmp_path: Path, volatile: VolatileFields, allow_repeats: bool = False) -> Library:
    CassetteAppender(tmp_path / "c.yaml").append(charge(1200, "key-1"), answer('{"id": "ch_1"}'))
    return Library([tmp_path / "c.yaml"], MATCH_ON, allow_repeats, volatile, ORIGIN)


def incoming(library: Library, request: Request) -> dict[str, Request]:
    path = request.uri[len(ORIGIN):]
    return library.incoming(request.method, path, request.body, dict(request.headers))


def test_volatile_fields_are_left_out_of_matching_but_the_rest_still_counts(tmp_path: Path) -> None:
    library = library_with(tmp_path, VOLATILE)
    other_run = charge(1200, "key-2", sent_at="2026-11-23T19:00:00Z")
    other_run.uri = f"{ORIGIN}/v1/charges?ts=99"
    assert library.play(incoming(library, other_run)) is not None
    library.reset()
    assert library.play(incoming(library, charge(999, "key-3"))) is None  # the amount is not volatile


def test_without_volatile_rules_a_new_idempotency_key_is_a_miss(tmp_path: Path) -> None:
    library = library_with(tmp_path, VolatileFields())
    assert library.play(incoming(library, charge(1200, "key-2"))) is None


def test_an_interaction_already_played_says_so_in_the_diagnostic(tmp_path: Path) -> None:
    library = library_with(tmp_path, VOLATILE)
    at = incoming(library, charge(1200, "key-1"))
    assert library.play(at) is not None and library.play(at) is None
    (interaction, reasons), = library.closest(at)
    assert "already played" in reasons and "allow_repeats is false" in reasons["already played"]


def test_placeholders_replace_volatile_values_when_recorded() -> None:
    volatile = VolatileFields.from_config({"json": ["$.idempotency_key"], "headers": ["Idempotency-Key"],
                                           "recorded_as": "placeholder"})
    stored = volatile.for_recording(charge(1200, "key-1"))
    assert json.loads(stored.body)["idempotency_key"] == PLACEHOLDER and json.loads(stored.body)["amount"] == 1200
    assert stored.headers["Idempotency-Key"] == PLACEHOLDER


def test_appending_keeps_every_recorded_byte_and_adds_only_the_new_interaction(tmp_path: Path) -> None:
    path = tmp_path / "payments.yaml"
    appender = CassetteAppender(path)
    appender.append(charge(1, "a"), answer('{"n": 1}'))
    before = path.read_text()
    appender.append(charge(2, "b"), answer('{"n": 2}'))
    after = path.read_text()
    assert after.startswith(before[: -len("version: 1\n")]) and after.endswith("version: 1\n")
    requests, responses = deserialize(after, yamlserializer)
    assert [json.loads(r.body)["amount"] for r in requests] == [1, 2]


def test_appending_to_a_cassette_it_cannot_splice_rewrites_it_whole_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "payments.yaml"
    CassetteAppender(path).append(charge(1, "a"), answer('{"n": 1}'))
    path.write_text("version: 1\n" + path.read_text().replace("version: 1\n", ""))  # keys in another order
    CassetteAppender(path).append(charge(2, "b"), answer('{"n": 2}'))
    requests, _ = deserialize(path.read_text(), yamlserializer)
    assert [json.loads(r.body)["amount"] for r in requests] == [1, 2]


@pytest.mark.parametrize("path, steps", [("$.a", ("a",)), ("$.items[*].id", ("items", "*", "id")),
                                         ("$.a[0].b", ("a", 0, "b"))])
def test_json_paths_read_as_steps(path: str, steps: tuple) -> None:
    assert parse_json_path(path) == steps


@pytest.mark.parametrize("path", ["a.b", "$", "$.a[x]", "$..a"])
def test_json_paths_outside_the_subset_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        parse_json_path(path)


def test_the_mock_image_installs_the_vcrpy_pyproject_pins() -> None:
    import re
    from importlib.metadata import version

    root = Path(__file__).parents[2]
    pinned = re.search(r'"vcrpy==([^"]+)"', (root / "pyproject.toml").read_text()).group(1)
    image = re.search(r"ARG VCRPY_VERSION=(\S+)", (root / "envctl" / "mockserver" / "Dockerfile").read_text()).group(1)
    assert image == pinned == version("vcrpy")


def test_the_mock_image_holds_every_module_the_server_imports() -> None:
    import re

    mocks = Path(__file__).parents[2] / "envctl" / "mockserver"
    copied = set(re.search(r"COPY (.*) /opt/envctl/envctl_mock/", (mocks / "Dockerfile").read_text()).group(1).split())
    let_in = {line[1:] for line in (mocks / ".dockerignore").read_text().split() if line.startswith("!")}
    needed, todo = {"__init__.py"}, ["server.py"]
    while todo:  # the server's relative imports, and theirs
        module = todo.pop()
        needed.add(module)
        for name in re.findall(r"^from \.(\w+) import", (mocks / module).read_text(), re.M):
            if f"{name}.py" not in needed:
                todo.append(f"{name}.py")
    assert needed <= copied and copied <= let_in | {"Dockerfile"}


def test_recording_scrubs_what_is_written_not_what_the_caller_gets(tmp_path: Path) -> None:
    from envctl.mockserver.server import MockBehaviour

    mock = MockBehaviour({"name": "p", "mode": "record", "cassettes": str(tmp_path), "upstream": ORIGIN,
                          "record_file": str(tmp_path / "p.yaml"), "match_on": MATCH_ON, "allow_repeats": True})
    real = {"status": {"code": 200, "message": "OK"}, "body": {"string": b'{"access_token": "s3cr3t"}'},
            "headers": {"Content-Type": ["application/json"], "Set-Cookie": ["sid=s3cr3t"]}}
    mock.record(Request("POST", f"{ORIGIN}/login", b"{}", JSON), real)
    assert real["headers"]["Set-Cookie"] == ["sid=s3cr3t"] and b"s3cr3t" in real["body"]["string"]
    assert "s3cr3t" not in (tmp_path / "p.yaml").read_text()


def test_the_journal_shows_requests_scrubbed_with_their_fields_and_outcome(tmp_path: Path) -> None:
    from envctl.mockserver.server import MockBehaviour

    mock = MockBehaviour({"name": "p", "mode": "replay", "cassettes": str(tmp_path), "upstream": ORIGIN,
                          "record_file": str(tmp_path / "p.yaml"), "match_on": MATCH_ON, "allow_repeats": True})
    mock.journal.test = "t::one"
    entry = mock.journal.add("POST", "/v1/charges?api_key=s3cr3t&currency=eur",
                             {**JSON, "Authorization": "Bearer s3cr3t"}, b'{"amount": 5, "password": "s3cr3t"}')
    entry.update(outcome="unmatched", status=598)
    (seen,) = mock.journal.query(method="post", path="/v1/charges")
    assert "s3cr3t" not in json.dumps(seen)
    assert seen["json"] == {"amount": 5, "password": "REDACTED"} and seen["query"]["currency"] == "eur"
    assert (seen["outcome"], seen["status"], seen["test"], seen["seq"]) == ("unmatched", 598, "t::one", 1)
    assert mock.journal.query(path="/v1/other") == []


def test_a_request_is_scrubbed_before_it_is_matched_so_todays_real_key_matches_the_recorded_redaction(
        tmp_path: Path) -> None:
    from envctl.mockserver.server import MockBehaviour

    recorded = Request("GET", f"{ORIGIN}/v1/balance?api_key=REDACTED&currency=eur", None,
                       {"Authorization": "REDACTED"})
    CassetteAppender(tmp_path / "c.yaml").append(recorded, answer('{"balance": 1}'))
    mock = MockBehaviour({"name": "p", "mode": "replay", "cassettes": str(tmp_path), "upstream": ORIGIN,
                          "record_file": str(tmp_path / "p.yaml"), "match_on": MATCH_ON, "allow_repeats": True})
    at = mock.library.incoming("GET", "/v1/balance?api_key=sk_live_s3cr3t&currency=eur", None,
                               {"Authorization": "Bearer sk_live_s3cr3t"})
    assert mock.library.play(at) is not None
    miss = mock.miss(mock.library.incoming("GET", "/v1/balance?api_key=sk_live_s3cr3t&currency=usd", None,
                                           {"Authorization": "Bearer sk_live_s3cr3t"}))
    assert "s3cr3t" not in json.dumps(miss) and 'query currency: recorded "eur", sent "usd"' in miss["closest"][0]["diff"]


def test_a_route_only_mock_matches_unscrubbed_but_shows_a_miss_scrubbed(tmp_path: Path) -> None:
    from envctl.mockserver.server import MockBehaviour

    CassetteAppender(tmp_path / "c.yaml").append(Request("POST", f"{ORIGIN}/v1/mail", b"{}", {}), answer("{}"))
    mock = MockBehaviour({"name": "p", "mode": "replay", "cassettes": str(tmp_path), "upstream": ORIGIN,
                          "record_file": str(tmp_path / "p.yaml"), "match_on": ["method", "path"],
                          "allow_repeats": True})
    secret = ("/v1/mail?api_key=s3cr3t", b'{"password": "s3cr3t"}', {**JSON, "Authorization": "Bearer s3cr3t"})
    assert mock.library.play(mock.library.incoming("POST", *secret)) is not None
    miss = mock.miss(mock.library.incoming("PUT", *secret, whole=True))
    assert "s3cr3t" not in json.dumps(miss) and '"password": "REDACTED"' in miss["request"]


def test_a_request_seen_before_plays_as_the_first_time_and_an_interaction_recorded_since_counts(
        tmp_path: Path) -> None:
    library = library_with(tmp_path, VolatileFields())
    CassetteAppender(tmp_path / "c.yaml").append(charge(1200, "key-1"), answer('{"id": "ch_2"}'))
    library = Library([tmp_path / "c.yaml"], MATCH_ON, False, VolatileFields(), ORIGIN)
    same = charge(1200, "key-1")
    played = [library.play(incoming(library, same)) for _ in range(3)]
    assert [p and p.index for p in played] == [0, 1, None]  # each recorded copy once, then none

    other = charge(700, "key-9")
    assert library.play(incoming(library, other)) is None
    library.add_recorded("c.yaml", library.scrub(other), answer('{"id": "ch_3"}'))
    library.reset()
    assert library.play(incoming(library, other)).index == 2  # remembered misses do not hide it


def test_the_mock_server_uses_vcrpy_through_its_public_modules_only() -> None:
    import ast

    public = {"vcr.matchers", "vcr.request", "vcr.filters", "vcr.serialize", "vcr.serializers",
              "vcr.persisters.filesystem"}
    used = set()
    for path in (Path(__file__).parents[2] / "envctl" / "mockserver").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vcr":
                used |= {f"{node.module}.{a.name}" if node.module == "vcr" else node.module for a in node.names}
                assert not [a.name for a in node.names if a.name.startswith("_")], path.name
            elif isinstance(node, ast.Import):
                used |= {a.name for a in node.names if a.name.split(".")[0] == "vcr"}
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                assert not (isinstance(node.value, ast.Attribute) and ast.unparse(node.value).startswith("vcr.")), \
                    f"{path.name}: {ast.unparse(node)}"
    assert used and used <= public, used - public
