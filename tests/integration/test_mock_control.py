"""Mocks under a test's control, on the real engine: volatile fields, the request journal and
verification, field-level diagnostics, faults per test, recorded latency."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from vcr.request import Request

from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.backend.engine import Engine
from envctl.mockserver import UNMATCHED_STATUS
from envctl.mocks.admin import VerificationFailed
from envctl.stack import Stack
from tests.integration.test_mocks import (  # noqa: F401 - mock_dir and recorded_elsewhere are fixtures
    ORIGIN, load, mock_dir, recorded_elsewhere, response, session, write_cassette)

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

SCRUB_LINE = "    scrub: {headers: [X-Partner-Secret], body_json_keys: [cvc]}"


def configure(mock_dir: Path, extra: str) -> None:
    """More keys for the `payments` mock of the test's copy of the topology."""
    path = mock_dir / "envctl.yaml"
    path.write_text(path.read_text().replace(SCRUB_LINE, SCRUB_LINE + "\n" + extra))


@pytest.fixture
def stack(mock_dir: Path, recorded_elsewhere: Path, engine: Engine):
    """The payments mock up on its cassettes, as a test's stack handle; down afterwards."""
    created: list[Stack] = []

    def start(extra: str = "") -> Stack:
        configure(mock_dir, extra)
        topology = load(mock_dir)
        created.append(Stack(topology, engine, run_api.up(topology, engine, services=["payments"]).run))
        return created[-1]

    yield start
    for s in created:
        teardown.down(s.topology, engine, s.run)


def charge(base: str, body: dict, headers: dict | None = None) -> requests.Response:
    return session().post(base + "/v1/charges", json=body, headers=headers or {}, timeout=10)


EUR_1200 = {"amount": 1200, "currency": "eur", "source": "tok_visa"}


def test_volatile_fields_are_ignored_and_diagnostics_show_the_values_that_differ(
        mock_dir: Path, recorded_elsewhere: Path, stack) -> None:
    write_cassette(recorded_elsewhere / "keyed.yaml", [
        (Request("POST", f"{ORIGIN}/v1/refunds", json.dumps({"charge": "ch_1", "idempotency_key": "k-1",
                                                               "meta": {"sent_at": "2026-01-01"}}).encode(),
                 {"Content-Type": "application/json", "Idempotency-Key": "k-1"}),
         response(201, b'{"id": "re_1"}', {"Content-Type": ["application/json"]}))])
    s = stack("    allow_repeats: false\n"
              "    volatile: {json: [$.idempotency_key, $.meta.sent_at], headers: [Idempotency-Key]}")
    base = s.url("payments")
    refund = session().post(base + "/v1/refunds", timeout=10, headers={"Idempotency-Key": "k-2"},
                            json={"charge": "ch_1", "idempotency_key": "k-2", "meta": {"sent_at": "2026-11-23"}})
    assert refund.status_code == 201 and refund.json() == {"id": "re_1"}  # a new key and time, still a match

    again = session().post(base + "/v1/refunds", timeout=10,
                           json={"charge": "ch_1", "idempotency_key": "k-3", "meta": {"sent_at": "x"}})
    assert again.status_code == UNMATCHED_STATUS
    closest = again.json()["closest"][0]
    assert "already played" in closest["failed"]  # it matches, but was played and repeats are off

    miss = charge(base, {**EUR_1200, "amount": 999})
    assert miss.status_code == UNMATCHED_STATUS
    detail = miss.json()
    assert "$.amount: recorded 1200, sent 999" in detail["closest"][0]["diff"]
    assert detail["ignored"] == ["$.idempotency_key", "$.meta.sent_at", "header Idempotency-Key"]
    assert "$.amount: recorded 1200, sent 999" in s.logs("payments")


def test_tests_ask_what_was_sent_verify_it_and_reset_the_mock(stack) -> None:
    s = stack()
    payments = s.mock("payments")
    payments.set_test("tests/test_shop.py::test_checkout")
    assert charge(s.url("payments"), EUR_1200, {"Authorization": "Bearer sk_live_CANARY"}).status_code == 201
    assert charge(s.url("payments"), {**EUR_1200, "amount": 5}).status_code == UNMATCHED_STATUS

    sent = payments.requests(method="POST", path="/v1/charges")
    assert [r.json["amount"] for r in sent] == [1200, 5]
    assert [r.outcome for r in sent] == ["played", "unmatched"] and sent[0].interaction == "charges.yaml#0"
    assert sent[0].header("Authorization") == "REDACTED"  # the journal is scrubbed like a cassette
    assert {r.test for r in sent} == {"tests/test_shop.py::test_checkout"}
    assert payments.unmatched[0]["test"] == "tests/test_shop.py::test_checkout"

    payments.verify(method="POST", path="/v1/charges", count=1, json={"amount": 1200, "currency": "eur"})
    with pytest.raises(VerificationFailed) as failed:
        payments.verify(method="POST", path="/v1/charges", json={"amount": 700})
    assert "$.amount: expected 700, got 1200" in str(failed.value)
    assert "$.amount: expected 700, got 5" in str(failed.value)

    payments.reset()
    assert payments.requests() == [] and payments.unmatched == [] and not payments.played


def test_the_journal_is_bounded_and_says_what_it_left_out(stack) -> None:
    s = stack()
    base, client = s.url("payments"), session()
    for _ in range(2003):
        assert client.get(base + "/v1/status", timeout=10).status_code == 200
    big = client.post(base + "/v1/charges", json={"amount": 1200, "note": "x" * 70_000}, timeout=10)
    assert big.status_code == UNMATCHED_STATUS
    answer = client.get(base + "/__envctl/requests", timeout=10).json()
    assert len(answer["requests"]) == 2000 and answer["dropped"] == 4  # the oldest went first
    last = answer["requests"][-1]
    assert last["body_truncated"] and len(last["body"]) == 64 * 1024 and last["json"] is None


def test_the_mock_runs_the_vcrpy_the_host_pins(stack) -> None:
    from importlib.metadata import version

    code, output = stack().exec("payments", ["python3", "-c", "from importlib.metadata import version; "
                                             "print(version('vcrpy'))"])
    assert (code, output.strip()) == (0, version("vcrpy"))


def test_faults_under_a_tests_control(stack) -> None:
    s = stack("    scenarios:\n      provider-down:\n        - {kind: status, status: 503, path: /v1/status, times: 2}")
    payments, base = s.mock("payments"), s.url("payments")
    payments.fault(kind="status", status=429, method="GET", path="/v1/status", times=1)
    assert [session().get(base + "/v1/status", timeout=10).status_code for _ in range(2)] == [429, 200]

    payments.fault(kind="reset", path="/v1/status")
    with pytest.raises(requests.ConnectionError):
        session().get(base + "/v1/status", timeout=10)
    assert session().get(base + "/v1/status", timeout=10).status_code == 200  # only the next one

    payments.fault(kind="delay", delay_ms=400, path="/v1/status")
    started = time.monotonic()
    assert session().get(base + "/v1/status", timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.4  # it waited at least the delay asked for

    payments.scenario("provider-down")
    assert [session().get(base + "/v1/status", timeout=10).status_code for _ in range(3)] == [503, 503, 200]
    outcomes = [r.outcome for r in payments.requests(path="/v1/status")]
    assert outcomes.count("fault: status") == 3 and "fault: reset" in outcomes

    payments.fault(kind="status", path="/v1/status", times=None)
    payments.reset()  # per-test isolation: faults go too
    assert session().get(base + "/v1/status", timeout=10).status_code == 200


def test_a_random_fault_repeats_with_its_seed(stack) -> None:
    s = stack()
    payments, base = s.mock("payments"), s.url("payments")

    def draws(seed: int) -> list[int]:
        payments.reset()
        payments.fault(kind="status", status=503, path="/v1/status", times=None, probability=0.5, seed=seed)
        return [session().get(base + "/v1/status", timeout=10).status_code for _ in range(16)]

    first = draws(7)
    assert set(first) == {200, 503}  # random: some requests fail, some do not
    assert draws(7) == first  # the same seed, the same requests fail
    assert draws(8) != first


def test_recorded_latency_is_replayed_when_asked(mock_dir: Path, recorded_elsewhere: Path, stack) -> None:
    slow = response(200, b'{"slow": true}', {"Content-Type": ["application/json"]})
    slow["envctl"] = {"latency_ms": 500}
    write_cassette(recorded_elsewhere / "slow.yaml", [(Request("GET", f"{ORIGIN}/v1/slow", None, {}), slow)])
    s = stack("    replay_latency: true")
    started = time.monotonic()
    assert session().get(s.url("payments") + "/v1/slow", timeout=10).json() == {"slow": True}
    assert time.monotonic() - started >= 0.5


INNER_TESTS = '''
import requests

def test_a_sends_its_own_miss_and_passes(envctl_stack):
    assert requests.get(envctl_stack.url("payments") + "/v1/not-recorded", timeout=10).status_code == 598

def test_b_sends_a_wrong_amount_and_fails(envctl_stack):
    requests.post(envctl_stack.url("payments") + "/v1/charges", timeout=10,
                  json={"amount": 999, "currency": "eur", "source": "tok_visa"})
    assert False, "the charge was refused"
'''


def test_a_failing_tests_report_shows_the_unmatched_requests_it_sent_with_their_diff(
        pytester: pytest.Pytester, mock_dir: Path, recorded_elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVCTL_RUN", raising=False)  # when this suite itself runs under 'envctl ci'
    monkeypatch.delenv("ENVCTL_FILE", raising=False)
    pytester.makepyfile(INNER_TESTS)
    result = pytester.runpytest_subprocess("--envctl-file", str(mock_dir / "envctl.yaml"),
                                           "--envctl-services", "payments")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    title = "envctl mock: payments requests this test sent that no interaction matches"
    assert output.count(title) == 1
    section = output.split(title, 1)[1].split("\n", 1)[1]
    section = section[: min(i for i in (section.find("\n---"), section.find("\n==="), len(section)) if i >= 0)]
    assert "POST https://api.payments.example/v1/charges" in section
    assert "$.amount: recorded 1200, sent 999" in section
    assert "/v1/not-recorded" not in section  # the other test's miss is the other test's
