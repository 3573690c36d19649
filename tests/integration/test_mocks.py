"""Recorded-HTTP mocks on the real engine: record through a proxy, replay byte for byte."""
from __future__ import annotations

import gzip
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from vcr.request import Request
from vcr.serialize import deserialize, serialize
from vcr.serializers import jsonserializer, yamlserializer

from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.backend.engine import Engine
from envctl.errors import TopologyError
from envctl.mockserver import UNMATCHED_STATUS
from envctl.topology import Topology, load_topology
from tests.integration.conftest import envctl, run_resources

pytestmark = pytest.mark.integration

MOCKSTACK = Path(__file__).parent / "mockstack"
CANARY = "CANARY-7f3a9c"


@pytest.fixture
def mock_dir(tmp_path: Path, session_images: None) -> Path:
    target = tmp_path / "mockstack"
    shutil.copytree(MOCKSTACK, target, ignore=shutil.ignore_patterns(".envctl", "*.yaml.bak"))
    for leftover in (target / "cassettes" / "payments").glob("*.yaml"):
        leftover.unlink()
    return target


def load(mock_dir: Path) -> Topology:
    return load_topology(mock_dir / "envctl.yaml", environ={})


def mock_url(engine: Engine, topology: Topology) -> str:
    port = run_api.host_port(engine, topology, run_api.current_run(topology), "payments")
    return f"http://127.0.0.1:{port}"


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


# The calls the tests make, with what makes each interesting.
CALLS = [
    ("POST", "/v1/charges", {"Content-Type": "application/json"}, b'{"amount": 1200, "source": "tok_visa"}'),
    ("POST", "/v1/charges", {"Content-Type": "application/json"}, b'{"amount": 500, "source": "tok_chargeDeclined"}'),
    ("GET", "/v1/charges/ch_1", {"Accept-Encoding": "gzip"}, b""),  # gzip body
    ("GET", "/v1/events", {}, b""),  # chunked
    ("GET", "/v1/logo.png", {}, b""),  # binary
]


def call(base: str, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
    response = session().request(method, base + path, headers=headers, data=body or None, stream=True, timeout=10)
    raw = response.raw.read(decode_content=False)
    names = {k.lower(): v for k, v in response.headers.items()}
    return response.status_code, names, raw


def test_record_through_the_upstream_then_replay_without_it(mock_dir: Path, engine: Engine) -> None:
    topology = load(mock_dir)
    recording = run_api.up(topology, engine, services=["upstream"], record=["payments"])
    try:
        base = mock_url(engine, topology)
        recorded = [call(base, *c) for c in CALLS]
        assert [r[0] for r in recorded] == [201, 402, 200, 200, 200]
        info = engine.client.api.inspect_container(
            run_api.containers_by_service(engine, topology, recording.run)["payments"].id)
        assert info["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    finally:
        teardown.down(topology, engine, recording.run)
    cassette = mock_dir / "cassettes" / "payments" / "payments.yaml"
    assert cassette.is_file() and cassette.stat().st_uid == os.getuid()

    replaying = run_api.up(topology, engine, services=["payments"])
    try:
        running = run_api.containers_by_service(engine, topology, replaying.run)
        assert "upstream" not in running  # the real API is gone: answers come from the cassette
        base = mock_url(engine, topology)
        replayed = [call(base, *c) for c in CALLS]
    finally:
        teardown.down(topology, engine, replaying.run)
    for (status, headers, body), (r_status, r_headers, r_body) in zip(recorded, replayed):
        assert r_status == status
        assert r_body == body  # byte for byte, gzip and chunked included
        assert r_headers == headers
    assert replayed[2][1]["content-encoding"] == "gzip"
    assert replayed[3][1]["transfer-encoding"] == "chunked"


def test_a_canary_secret_never_reaches_a_cassette(mock_dir: Path, engine: Engine) -> None:
    topology = load(mock_dir)
    run = run_api.up(topology, engine, services=["upstream"], record=["payments"]).run
    try:
        response = session().post(
            mock_url(engine, topology) + f"/v1/charges?api_key={CANARY}&token={CANARY}&currency=eur",
            headers={"Authorization": f"Bearer {CANARY}", "X-Api-Key": CANARY, "Cookie": f"sid={CANARY}",
                     "X-Partner-Secret": CANARY, "Content-Type": "application/json"},
            data=json.dumps({"amount": 1, "source": "tok_visa", "token": CANARY,
                             "card": {"number": "4242", "cvc": CANARY}, "password": CANARY}), timeout=10)
        assert response.status_code == 201
        # the caller still gets the real answer, secrets and all (Set-Cookie and a token in the body)
        assert response.json()["access_token"] == CANARY and CANARY in response.headers["Set-Cookie"]
    finally:
        teardown.down(topology, engine, run)
    cassette = mock_dir / "cassettes" / "payments" / "payments.yaml"
    text = cassette.read_text()
    assert CANARY not in text
    requests_, responses = deserialize(text, yamlserializer)
    for response in responses:
        body = response["body"]["string"]
        if "gzip" in str(response["headers"].get("Content-Encoding", "")):
            body = gzip.decompress(body)
        assert CANARY.encode() not in (body if isinstance(body, bytes) else body.encode())
    assert "REDACTED" in text and "currency=eur" in text  # scrubbed, not dropped; the rest kept


def test_form_encoded_secrets_never_reach_a_cassette_or_the_mock_log(mock_dir: Path, engine: Engine) -> None:
    topology = load(mock_dir)
    run = run_api.up(topology, engine, services=["upstream"], record=["payments"]).run
    multipart = (f'--b0\r\nContent-Disposition: form-data; name="client_id"\r\n\r\nshop\r\n'
                 f'--b0\r\nContent-Disposition: form-data; name="client_secret"\r\n\r\n{CANARY}\r\n--b0--\r\n')
    try:
        token = mock_url(engine, topology) + "/oauth/token"
        answer = session().post(token, data={"grant_type": "client_credentials", "client_id": "shop",
                                             "client_secret": CANARY}, timeout=10)  # urlencoded, as OAuth clients send
        assert answer.status_code == 200 and f"access_token={CANARY}" in answer.text  # the caller gets the real answer
        assert session().post(token, data=multipart.encode(), timeout=10,
                              headers={"Content-Type": "multipart/form-data; boundary=b0"}).status_code == 200
    finally:
        teardown.down(topology, engine, run)
    text = (mock_dir / "cassettes" / "payments" / "payments.yaml").read_text()
    assert CANARY not in text
    assert "client_secret=REDACTED" in text and "access_token=REDACTED" in text and "client_id=shop" in text
    mock_log = (mock_dir / ".envctl" / "runs" / run / "logs" / "payments.log").read_text()
    assert "/oauth/token" in mock_log and CANARY not in mock_log


def write_cassette(path: Path, interactions: list[tuple[Request, dict]]) -> None:
    """A cassette recorded 'elsewhere': written with vcrpy's own persistence."""
    serializer = jsonserializer if path.suffix == ".json" else yamlserializer
    requests_, responses = zip(*interactions)
    path.write_text(serialize({"requests": list(requests_), "responses": list(responses)}, serializer))


def response(code: int, body: bytes, headers: dict[str, list[str]]) -> dict:
    return {"status": {"code": code, "message": "OK" if code < 400 else "Error"}, "headers": headers,
            "body": {"string": body}}


GZIPPED = gzip.compress(b'{"id": "ch_9", "status": "succeeded"}', mtime=0)
BINARY = bytes(range(256)) * 3
ORIGIN = "https://api.payments.example"


@pytest.fixture
def recorded_elsewhere(mock_dir: Path) -> Path:
    directory = mock_dir / "cassettes" / "payments"
    write_cassette(directory / "charges.yaml", [
        (Request("POST", f"{ORIGIN}/v1/charges", b'{"amount": 1200, "currency": "eur", "source": "tok_visa"}',
                 {"Content-Type": "application/json"}),
         response(201, b'{"id": "ch_1", "status": "succeeded", "amount": 1200}',
                  {"Content-Type": ["application/json"], "Request-Id": ["req_1"]})),
        (Request("GET", f"{ORIGIN}/v1/charges/ch_9", None, {}),
         response(200, GZIPPED, {"Content-Type": ["application/json"], "Content-Encoding": ["gzip"]})),
        (Request("GET", f"{ORIGIN}/v1/files/logo", None, {}),
         response(200, BINARY, {"Content-Type": ["application/octet-stream"]})),
    ])
    write_cassette(directory / "status.json", [
        (Request("GET", f"{ORIGIN}/v1/status", None, {}),
         response(200, b'{"status": "operational"}', {"Content-Type": ["application/json"]})),
    ])
    return directory


def test_cassettes_recorded_elsewhere_replay_exactly(mock_dir: Path, recorded_elsewhere: Path, engine: Engine) -> None:
    topology = load(mock_dir)
    run = run_api.up(topology, engine, services=["payments"]).run
    try:
        base = mock_url(engine, topology)
        status, headers, body = call(base, "GET", "/v1/charges/ch_9", {}, b"")
        assert (status, headers["content-encoding"], body) == (200, "gzip", GZIPPED)
        status, headers, body = call(base, "GET", "/v1/files/logo", {}, b"")
        assert (status, headers["content-type"], body) == (200, "application/octet-stream", BINARY)
        assert session().get(base + "/v1/status", timeout=10).json() == {"status": "operational"}
        charge = session().post(base + "/v1/charges", timeout=10,
                                json={"amount": 1200, "currency": "eur", "source": "tok_visa"})
        assert charge.status_code == 201 and charge.headers["Request-Id"] == "req_1"
    finally:
        teardown.down(topology, engine, run)


def test_a_service_reaches_the_mock_by_reference(mock_dir: Path, recorded_elsewhere: Path, engine: Engine) -> None:
    topology = load(mock_dir)
    run = run_api.up(topology, engine, services=["shop"]).run  # shop depends on payments
    try:
        record = run_api.current_run(topology)
        shop = run_api.host_port(engine, topology, record, "shop")
        body = session().get(f"http://127.0.0.1:{shop}/checkout", timeout=10).json()
        assert body["payments_url"] == "http://payments:8080"
        assert body["charge"] == {"id": "ch_1", "status": "succeeded", "amount": 1200}
        report = run_api.mock_reports(engine, topology, record, "payments")[0]
        assert len(report.played) == 1 and report.played[0]["request"].startswith(f"POST {ORIGIN}/v1/charges ")
        assert len(report.unplayed) == 3
    finally:
        teardown.down(topology, engine, run)


def test_unmatched_requests_get_the_documented_diagnostic_and_concurrency_holds(
        mock_dir: Path, recorded_elsewhere: Path, engine: Engine) -> None:
    topology = load(mock_dir)
    run = run_api.up(topology, engine, services=["payments"]).run
    try:
        base = mock_url(engine, topology)
        miss = session().post(base + "/v1/charges", json={"amount": 999, "currency": "eur", "source": "tok_visa"},
                              timeout=10)
        assert miss.status_code == UNMATCHED_STATUS and miss.headers["X-Envctl-Mock"] == "unmatched"
        detail = miss.json()
        assert detail["request"].startswith(f"POST {ORIGIN}/v1/charges ") and '"amount": 999' in detail["request"]
        assert detail["closest"][0]["request"].startswith(f"POST {ORIGIN}/v1/charges ")
        assert list(detail["closest"][0]["failed"]) == ["body"]  # the matcher that failed, and only it

        def one(i: int) -> bool:
            path = ("/v1/status", "/v1/files/logo", "/v1/charges/ch_9")[i % 3]
            status, _, body = call(base, "GET", path, {}, b"")
            expected = {"/v1/status": b'{"status": "operational"}', "/v1/files/logo": BINARY,
                        "/v1/charges/ch_9": GZIPPED}[path]
            return status == 200 and body == expected

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(200)))
        assert all(results) and len(results) == 200
        logs = run_api.logs(engine, topology, run_api.current_run(topology), "payments")["payments"]
        assert "UNMATCHED POST https://api.payments.example/v1/charges" in logs
    finally:
        teardown.down(topology, engine, run)


def test_strict_mock_fails_down_and_mocks_command_reports(mock_dir: Path, recorded_elsewhere: Path) -> None:
    path = mock_dir / "envctl.yaml"
    path.write_text(path.read_text().replace("    match_on: [method, path, query, body]",
                                             "    match_on: [method, path, query, body]\n    strict: true"))
    envctl(["up", "payments"], mock_dir, {})
    port = envctl(["port", "payments"], mock_dir, {}).stdout.strip()
    assert session().get(f"http://{port}/v1/status", timeout=10).status_code == 200
    assert session().get(f"http://{port}/v1/nothing-here", timeout=10).status_code == UNMATCHED_STATUS
    report = envctl(["mocks"], mock_dir, {}).stdout
    assert "1 played, 3 unplayed, 1 unmatched" in report and "unmatched     GET" in report
    assert "path: recorded /v1/charges/ch_9, sent /v1/nothing-here" in report  # the closest, field by field
    journal = envctl(["mocks", "--requests"], mock_dir, {}).stdout
    assert "#1 GET /v1/status -> 200 played" in journal and "#2 GET /v1/nothing-here -> 598 unmatched" in journal
    down = envctl(["down"], mock_dir, {}, check=False)
    assert down.returncode == 1
    assert "unmatched request GET https://api.payments.example/v1/nothing-here" in down.stderr
    assert "was never played" in down.stderr and "Traceback" not in down.stderr
    assert "removed" in down.stdout  # torn down all the same


def test_a_malformed_cassette_is_named_before_anything_starts(mock_dir: Path, engine: Engine) -> None:
    bad = mock_dir / "cassettes" / "payments" / "broken.yaml"
    bad.write_text("interactions:\n- request: [unclosed\n")
    topology = load(mock_dir)
    with pytest.raises(TopologyError) as caught:
        run_api.up(topology, engine, services=["payments"], run_id="badcassette")
    assert str(bad) in str(caught.value) and "does not load" in str(caught.value)
    assert run_resources(engine, "badcassette") == {"containers": [], "networks": [], "volumes": []}


def test_a_missing_cassette_directory_is_a_validation_error(mock_dir: Path) -> None:
    shutil.rmtree(mock_dir / "cassettes")
    with pytest.raises(TopologyError, match="no cassette directory or file at"):
        load(mock_dir)
