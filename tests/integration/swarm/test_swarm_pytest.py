"""The pytest fixture against the swarm lab: tests get the stack's node addresses, and nothing is left."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from .. import swarmlab
from .test_swarm_backend import STACK, on_lab

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration


def test_the_fixture_hands_tests_a_stack_on_the_swarm(pytester: pytest.Pytester, swarm_lab: swarmlab.Lab,
                                                      lab_env: dict[str, str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(STACK, stack)
    for key, value in lab_env.items():
        monkeypatch.setenv(key, value)
    for key in ("ENVCTL_RUN", "ENVCTL_FILE"):
        monkeypatch.delenv(key, raising=False)
    seen = tmp_path / "seen.json"
    pytester.makepyfile(textwrap.dedent(f'''
        import json, requests

        def test_on_the_swarm(envctl_stack):
            rows = {{row.service: row for row in envctl_stack.status()}}
            assert all(row.node and row.node.startswith("envsw-n") for row in rows.values()), rows
            assert envctl_stack.host("api").startswith("{swarmlab.SUBNET}.")
            answer = requests.get(envctl_stack.url("api") + "/cgi-bin/who", timeout=10).text
            assert answer.strip().startswith("api ") and "-store one" in answer
            code, output = envctl_stack.exec("store", ["cat", "/www/who.txt"])
            assert code == 0 and output.strip().endswith("-store one")
            with open({str(seen)!r}, "w") as fh:
                json.dump({{"run": envctl_stack.run}}, fh)
    '''))
    result = pytester.runpytest_subprocess("--envctl-file", str(stack / "envctl.yaml"), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    run = json.loads(seen.read_text())["run"]
    assert on_lab(swarm_lab, run) == {}
