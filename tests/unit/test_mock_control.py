"""Pure parts of mock control: fault plans (counted, seeded), verification diffs, field-level diffs, the topology keys."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from envctl.errors import TopologyError
from envctl.mockserver.faults import FaultPlan
from envctl.mockserver.fielddiff import body_diff, response_diff
from envctl.mocks.verify import SentRequest, mismatch
from envctl.topology import load_topology
from envctl.topology.model import FaultStep


def test_a_fault_applies_to_the_next_n_matching_requests_only() -> None:
    plan = FaultPlan(None, None)
    plan.add({"kind": "status", "status": 503, "method": "POST", "path": "/v1/charges", "times": 2})
    assert plan.take("GET", "/v1/charges") is None  # another method
    assert [plan.take("POST", "/v1/charges?x=1") is not None for _ in range(3)] == [True, True, False]


def test_a_path_ending_in_a_star_is_a_prefix() -> None:
    plan = FaultPlan(None, None)
    plan.add({"kind": "reset", "path": "/v1/*", "times": None})
    assert plan.take("GET", "/v1/anything").kind == "reset" and plan.take("GET", "/v2/x") is None


def test_random_faults_repeat_with_their_seed() -> None:
    def draws(seed: int) -> list[bool]:
        plan = FaultPlan({"error_rate": 0.5, "seed": seed}, None)
        return [plan.take("GET", "/") is not None for _ in range(40)]

    assert draws(7) == draws(7) and draws(7) != draws(8)
    rule = {"kind": "status", "probability": 0.3, "seed": 1, "times": None}
    first, second = FaultPlan(None, None), FaultPlan(None, None)
    first.add(rule), second.add(rule)
    assert [first.take("GET", "/") is None for _ in range(30)] == [second.take("GET", "/") is None for _ in range(30)]


def test_a_named_scenario_starts_its_rules() -> None:
    plan = FaultPlan(None, {"down": [{"kind": "status", "status": 503, "times": 1}, {"kind": "delay", "delay_ms": 5}]})
    assert [r.kind for r in plan.start_scenario("down")] == ["status", "delay"]
    with pytest.raises(KeyError):
        plan.start_scenario("nope")


def sent(seq: int, amount: int) -> SentRequest:
    return SentRequest(seq=seq, method="POST", path="/v1/charges", json={"amount": amount, "meta": {"k": "v"}},
                       outcome="played", test="t::a")


def test_verify_passes_on_a_subset_and_fails_with_each_requests_differences() -> None:
    assert mismatch("payments", [sent(1, 1200)], "POST", "/v1/charges", 1, json={"amount": 1200}) is None
    problem = mismatch("payments", [sent(1, 1200), sent(2, 5)], "POST", "/v1/charges", None,
                       json={"amount": 700, "meta": {"k": "w"}})
    assert "expected at least 1 request(s) POST /v1/charges" in problem
    assert "#1 POST /v1/charges (played, test t::a): differs: $.amount: expected 700, got 1200; $.meta.k" in problem
    assert "saw 0" in problem


def test_verify_counts() -> None:
    problem = mismatch("payments", [sent(1, 1), sent(2, 1)], "POST", "/v1/charges", 1, json={"amount": 1})
    assert "expected 1 request(s)" in problem and "saw 2" in problem


def test_body_diffs_name_json_paths_and_form_fields() -> None:
    assert body_diff(b'{"a": {"b": [1, 2]}}', b'{"a": {"b": [1, 3]}, "c": true}') == [
        "$.a.b[1]: recorded 2, sent 3", "$.c: recorded (absent), sent true"]
    assert body_diff(b"x=1&y=2", b"x=1&y=3") == ['form y: recorded "2", sent "3"']


def test_a_response_diff_undoes_gzip_and_ignores_the_date() -> None:
    def answer(status: str, date: str) -> dict:
        body = gzip.compress(f'{{"status": "{status}"}}'.encode(), mtime=0)
        return {"status": {"code": 200}, "body": {"string": body},
                "headers": {"Content-Encoding": ["gzip"], "Date": [date], "Content-Type": ["application/json"]}}

    assert response_diff(answer("ok", "Mon"), answer("ok", "Tue")) == []
    assert response_diff(answer("ok", "Mon"), answer("gone", "Tue")) == ['$.status: recorded "ok", now "gone"']


def topology_with(tmp_path: Path, mock_keys: str) -> Path:
    (tmp_path / "cassettes").mkdir()
    path = tmp_path / "envctl.yaml"
    path.write_text("name: t\nbases:\n  os: {image: debian:bookworm}\nmocks:\n  payments:\n"
                    "    cassettes: cassettes\n" + mock_keys)
    return path


def test_the_topology_declares_volatile_fields_scenarios_and_latency_replay(tmp_path: Path) -> None:
    mock = load_topology(topology_with(tmp_path, (
        "    volatile: {json: [$.idempotency_key, '$.items[*].ts'], headers: [Idempotency-Key], query: [ts],\n"
        "               form: [nonce], recorded_as: placeholder}\n"
        "    fault: {error_rate: 0.1, seed: 3}\n"
        "    replay_latency: true\n"
        "    scenarios:\n      down: [{kind: status, status: 503, times: 2}, {kind: reset, path: /v1/*, times: null}]\n")),
        environ={}).mocks["payments"]
    assert mock.volatile.json_paths == ("$.idempotency_key", "$.items[*].ts")
    assert mock.volatile.recorded_as == "placeholder" and mock.fault.seed == 3 and mock.replay_latency
    assert dict(mock.scenarios)["down"] == (FaultStep(kind="status", status=503, times=2),
                                            FaultStep(kind="reset", path="/v1/*", times=None))


@pytest.mark.parametrize("keys, message", [
    ("    volatile: {json: [idempotency_key]}\n", "does not start with"),
    ("    volatile: {recorded_as: hidden}\n", "is not one of kept, placeholder"),
    ("    scenarios: {down: [{kind: explode}]}\n", "is not a fault kind"),
    ("    scenarios: {down: []}\n", "must be a non-empty list"),
    ("    scenarios: {down: [{kind: status, probability: 2}]}\n", "is not a share from 0 to 1"),
])
def test_bad_mock_keys_are_named_with_their_line(tmp_path: Path, keys: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message) as caught:
        load_topology(topology_with(tmp_path, keys), environ={})
    assert "envctl.yaml:7" in str(caught.value)
