"""One duration syntax for topology files and --ttl; nonsense is an error, never a duration that never ends."""
import math

import pytest

from envctl.runtime import lease
from envctl.durations import DurationError, parse_duration
from envctl.errors import TopologyError
from envctl.topology import load_topology


@pytest.mark.parametrize("value, seconds", [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("45", 45), (" 45 ", 45), ("1m30s", 90),
    ("500ms", 0.5), ("1.5h", 5400), ("250us", 0.00025), (30, 30), (0.5, 0.5), ("0", 0), (0, 0),
])
def test_durations(value, seconds):
    assert math.isclose(parse_duration(value), seconds)


@pytest.mark.parametrize("value", [
    "soon", "-5m", "", "   ", "nan", "inf", "1e3", "5 m", "1x", "m", "30s5", float("nan"), float("inf"), -1, True, None,
])
def test_nonsense_is_not_a_duration(value):
    with pytest.raises(DurationError, match="is not a duration"):
        parse_duration(value)


def test_a_ttl_must_be_longer_than_zero():
    assert lease.parse_ttl("2h") == 7200
    with pytest.raises(DurationError, match="zero"):
        lease.parse_ttl("0s")


def test_a_topology_duration_of_infinity_is_a_located_problem(write_topology):
    path = write_topology(
        """
        name: shop
        services:
          db: {image: "postgres:16", ports: ["5432"], probe: {tcp: 5432, timeout: .inf}}
        """
    )
    with pytest.raises(TopologyError, match=r"services\.db\.probe\.timeout: inf is not a duration"):
        load_topology(path, environ={})
