"""Bad command-line values are usage errors (exit 2, the option named), before any work starts."""
import pytest
from click.testing import CliRunner

from envctl.shells.cli import main


@pytest.mark.parametrize("ttl", ["nan", "inf", "0", "-1h", "soon"])
def test_up_refuses_a_ttl_that_is_no_duration_before_doing_anything(ttl, tmp_path):
    result = CliRunner().invoke(main, ["-f", str(tmp_path / "none.yaml"), "up", "--ttl", ttl])
    assert result.exit_code == 2, result.output
    assert "--ttl" in result.output and ("not a duration" in result.output or "zero" in result.output)


@pytest.mark.parametrize("command", ["up", "build"])
@pytest.mark.parametrize("parallel", ["-1", "0"])
def test_parallel_below_one_is_a_usage_error(command, parallel, tmp_path):
    result = CliRunner().invoke(main, ["-f", str(tmp_path / "none.yaml"), command, "--parallel", parallel])
    assert result.exit_code == 2, result.output
    assert "--parallel" in result.output


@pytest.mark.parametrize("pid", ["0", "-1"])
def test_bind_to_takes_a_process_id(pid, tmp_path):
    result = CliRunner().invoke(main, ["-f", str(tmp_path / "none.yaml"), "up", "--bind-to", pid])
    assert result.exit_code == 2, result.output
    assert "--bind-to" in result.output


def collector_after(code: str) -> str:
    """What a fresh interpreter says of its cyclic collector (on, frozen objects) after `code`."""
    import subprocess
    import sys
    said = subprocess.run([sys.executable, "-c", f"import gc\n{code}\nprint(gc.isenabled(), gc.get_freeze_count() > 0)"],
                          capture_output=True, text=True, check=True)
    return said.stdout.strip()


def test_importing_the_cli_leaves_the_cyclic_collector_as_it_was() -> None:
    assert collector_after("import envctl.shells.cli") == "True False"


def test_the_entry_point_loads_the_cli_without_the_collector_and_freezes_what_it_loaded() -> None:
    code = ("import sys, envctl.__main__ as entry\nsys.argv = ['envctl', '--version']\n"
            "try:\n    entry.run()\nexcept SystemExit:\n    pass")
    assert collector_after(code).endswith("True True")  # after the version it printed
