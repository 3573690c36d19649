"""The fast command stays fast: every test under tests/integration carries the `integration` marker.

A `pytestmark` in a conftest marks nothing, so a module that forgets its own marker runs
Docker tests under `pytest -m "not integration"`. Collecting with that filter must select none.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

INTEGRATION = Path(__file__).parents[1] / "integration"


def test_every_integration_test_is_marked_integration():
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", "not integration", str(INTEGRATION)],
        capture_output=True, text=True, cwd=INTEGRATION.parents[1], timeout=300,
    )
    unmarked = [line for line in collected.stdout.splitlines() if "::" in line]
    assert not unmarked, "integration tests without the 'integration' marker (add " \
                         "`pytestmark = pytest.mark.integration` to their module):\n" + "\n".join(unmarked)
    assert collected.returncode == 5, collected.stdout + collected.stderr  # 5: every test deselected
