"""Recording that never loses: record-missing replays what matches and appends only the misses."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.backend.engine import Engine
from envctl.mocks.report import MockReport
from tests.integration.conftest import envctl
from tests.integration.test_mocks import (  # noqa: F401 - mock_dir is a fixture
    CALLS, CANARY, call, load, mock_dir, mock_url, session)

pytestmark = pytest.mark.integration

CLOSING = "version: 1\n"


def session_calls(mock_dir: Path, engine: Engine, calls: list, **modes) -> MockReport:
    """One `up` with the upstream, the calls made, the mock's report read, then `down`."""
    topology = load(mock_dir)
    run = run_api.up(topology, engine, services=["upstream"], **modes).run
    try:
        base = mock_url(engine, topology)
        for c in calls:
            assert call(base, *c)[0] < 500
        return run_api.mock_reports(engine, topology, run_api.current_run(topology), "payments")[0]
    finally:
        teardown.down(topology, engine, run)


def recorded_paths(cassette: Path) -> list[str]:
    requests, _ = deserialize(cassette.read_text(), yamlserializer)
    return [f"{r.method} {r.path}" for r in requests]


def test_record_missing_appends_only_the_misses_and_keeps_the_recorded_bytes(mock_dir: Path, engine: Engine) -> None:
    cassette = mock_dir / "cassettes" / "payments" / "payments.yaml"
    first = session_calls(mock_dir, engine, [CALLS[0], CALLS[2]], record_missing=["payments"])
    assert len(first.recorded) == 2
    before = cassette.read_text()

    second = session_calls(mock_dir, engine, [CALLS[0], CALLS[2], CALLS[3]], record_missing=["payments"])
    assert len(second.recorded) == 1 and "/v1/events" in second.recorded[0]  # only the miss went upstream
    assert len(second.played) == 3 and not second.unplayed  # two replayed, and the one just recorded
    after = cassette.read_text()
    assert after.startswith(before[: -len(CLOSING)])  # what was recorded is untouched: the diff only adds
    assert recorded_paths(cassette) == ["POST /v1/charges", "GET /v1/charges/ch_1", "GET /v1/events"]


def test_a_second_record_session_keeps_the_first_ones_interactions(mock_dir: Path, engine: Engine) -> None:
    cassette = mock_dir / "cassettes" / "payments" / "payments.yaml"
    session_calls(mock_dir, engine, [CALLS[0]], record=["payments"])
    session_calls(mock_dir, engine, [CALLS[4]], record=["payments"])
    assert recorded_paths(cassette) == ["POST /v1/charges", "GET /v1/logo.png"]


def test_drift_names_the_field_the_upstream_changed(mock_dir: Path, engine: Engine) -> None:
    session_calls(mock_dir, engine, [CALLS[0], CALLS[3]], record=["payments"])
    topology_file = mock_dir / "envctl.yaml"
    topology_file.write_text(topology_file.read_text().replace(
        "    profiles: [recording]", "    profiles: [recording]\n    environment: {CHARGE_STATUS: pending}"))
    envctl(["up", "upstream", "payments"], mock_dir, {})
    try:
        same = envctl(["mocks", "--drift", "payments", "--json"], mock_dir, {}, check=False)
        text = envctl(["mocks", "--drift", "payments"], mock_dir, {}, check=False)
    finally:
        envctl(["down"], mock_dir, {})
    assert same.returncode == 1 and text.returncode == 1 and "Traceback" not in text.stderr
    (result,) = json.loads(same.stdout)
    assert result["drifted"] == 1
    charge, events = result["interactions"]
    assert charge["diff"] == ['$.status: recorded "succeeded", now "pending"']  # that field, and only it
    assert events["diff"] == []
    assert "1 of 2 interaction(s) drifted" in text.stdout and '$.status: recorded "succeeded", now "pending"' in text.stdout


VOLATILE = ("    volatile: {query: [ts], form: [nonce], json: [$.sent_at], headers: [Idempotency-Key],\n"
            "               recorded_as: placeholder}")


def cli_session(mock_dir: Path, flags: list[str], calls) -> None:
    """One `envctl up FLAGS upstream` from the command line, `calls(base)` made, then `envctl down`."""
    envctl(["up", *flags, "upstream"], mock_dir, {})
    try:
        calls("http://" + envctl(["port", "payments"], mock_dir, {}).stdout.strip())
    finally:
        envctl(["down"], mock_dir, {})


def send_volatile(base: str, run: int) -> None:
    """A charge and a token request whose volatile fields differ in every run; the secrets do not matter."""
    s = session()
    charge = s.post(f"{base}/v1/charges?ts={run}&currency=eur", timeout=10,
                    json={"amount": 1200, "source": "tok_visa", "sent_at": f"2026-11-2{run}"},
                    headers={"Idempotency-Key": f"key-{run}", "Authorization": f"Bearer {CANARY}-{run}"})
    assert charge.status_code == 201
    token = s.post(f"{base}/oauth/token", timeout=10,
                   data={"grant_type": "client_credentials", "client_id": "shop", "nonce": f"n-{run}"})
    assert token.status_code == 200


def test_record_missing_from_the_cli_matches_volatile_fields_and_records_their_placeholders(mock_dir: Path) -> None:
    topology_file = mock_dir / "envctl.yaml"
    topology_file.write_text(topology_file.read_text().replace(
        "    match_on: [method, path, query, body]", "    match_on: [method, path, query, body]\n" + VOLATILE))
    cassette = mock_dir / "cassettes" / "payments" / "payments.yaml"

    cli_session(mock_dir, ["--record-missing-all"], lambda base: send_volatile(base, 1))
    first = cassette.read_text()
    assert recorded_paths(cassette) == ["POST /v1/charges", "POST /oauth/token"]
    (charge, token), _ = deserialize(first, yamlserializer)
    assert dict(charge.query) == {"ts": "<volatile>", "currency": "eur"}  # placeholders, not the values sent
    assert json.loads(charge.body)["sent_at"] == "<volatile>" and charge.headers["Idempotency-Key"] == "<volatile>"
    assert dict(parse_qsl(token.body.decode())) == {"grant_type": "client_credentials", "client_id": "shop",
                                                    "nonce": "<volatile>"}
    assert CANARY not in first and charge.headers["Authorization"] == "REDACTED"  # scrubbed as `--record` scrubs

    def second_run(base: str) -> None:
        send_volatile(base, 2)  # other values in every volatile field: replayed, not recorded again
        assert call(base, *CALLS[3])[0] == 200  # the one miss: proxied and appended

    cli_session(mock_dir, ["--record-missing", "payments"], second_run)
    after = cassette.read_text()
    assert after.startswith(first[: -len(CLOSING)])  # the first session's bytes untouched: the diff only adds
    assert recorded_paths(cassette) == ["POST /v1/charges", "POST /oauth/token", "GET /v1/events"]
    assert CANARY not in after
