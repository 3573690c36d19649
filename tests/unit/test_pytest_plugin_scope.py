"""The plugin is installed wherever envctl is: a session that never asks for a stack must not notice it."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

UNRELATED_PROJECT_TEST = '''
import signal

def test_the_plugin_is_loaded_but_left_sigterm_alone(request):
    assert request.config.pluginmanager.has_plugin("envctl")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
'''


def test_a_session_without_envctl_stack_keeps_the_default_sigterm_handler(tmp_path: Path) -> None:
    (tmp_path / "test_unrelated.py").write_text(textwrap.dedent(UNRELATED_PROJECT_TEST))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
