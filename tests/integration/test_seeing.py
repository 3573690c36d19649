"""Seeing the stack: the start-up report in a real browser, the timeline, the graph, the doctor."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.backend.engine import Engine
from envctl.topology import Topology
from tests.integration.conftest import envctl

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).parents[2] / "reports"


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "the report test needs Debian's chromium (.ci/setup installs it)"
    return binary


def test_the_start_up_report_renders_with_one_bar_per_service(
        topology: Topology, engine: Engine, stack_dir: Path, stack_env) -> None:
    result = run_api.up(topology, engine)
    try:
        timeline_text = envctl(["timeline"], stack_dir, stack_env).stdout
    finally:
        teardown.down(topology, engine, result.run)
    report = stack_dir / ".envctl" / "runs" / result.run / "report.html"
    browser = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1100,500"]
    dom = subprocess.run([*browser, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    bars = re.findall(r'<g class="bar[^"]*" data-name="([^"]+)"', dom)
    assert sorted(bars) == ["api", "backend", "store"]
    assert re.search(r'<g class="bar critical" data-name="api"', dom)  # api was ready last
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "startup-report.png"
    subprocess.run([*browser, f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000  # a real picture, kept as a CI artifact
    # Images and containers share one schedule: the path runs back through store, or through
    # the image that was built last (backend's, when this run built it), to api.
    path = re.search(r"critical path: (.*)", timeline_text).group(1).split(" -> ")
    assert path[-2:] == ["backend", "api"]
    assert path[:-2] in (["store"], ["image backend"], ["image base:os", "image backend"], ["image base:os", "store"])


def test_graph_draws_the_topology_as_svg(stack_dir: Path, stack_env) -> None:
    svg = envctl(["graph", "--format", "svg"], stack_dir, stack_env).stdout
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for name in ("store", "backend", "api", "base os"):
        assert f">{name}" in svg
    mermaid = envctl(["graph", "--format", "mermaid"], stack_dir, stack_env).stdout
    assert "api --> backend" in mermaid and "backend --> store" in mermaid


def test_doctor_checks_the_machine_and_names_a_taken_fixed_port(stack_dir: Path, stack_env) -> None:
    ok = envctl(["doctor"], stack_dir, stack_env)
    assert re.search(r"engine\s+ok", ok.stdout) and re.search(r"fixed ports\s+ok", ok.stdout)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(stack_env["API_PORT"])))
        holder.listen()
        bad = envctl(["doctor"], stack_dir, stack_env, check=False)
    assert bad.returncode == 1
    assert f"host port {stack_env['API_PORT']} of 'api' is taken" in bad.stdout
    assert "1 check(s) failed: fixed ports" in bad.stderr and "Traceback" not in bad.stderr
