"""The suite itself: every test has a time bound, so a hang fails one test instead of the CI run."""
from __future__ import annotations

import pytest


def test_every_test_has_a_time_bound(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pytest-timeout is installed with envctl[test]"
    assert float(pytestconfig.getini("timeout") or 0) >= 60  # generous: real tests build images
