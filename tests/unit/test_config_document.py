"""`envctl config`: a file that loads again as the same topology, secrets masked only as values."""
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from envctl.shells.cli import main
from envctl.topology import load_topology
from envctl.topology.document import to_document

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = [ROOT / "envctl.yaml", ROOT / "tests/integration/stack/envctl.yaml",
              ROOT / "tests/integration/mockstack/envctl.yaml"]


def assert_reloads_the_same(first, tmp_path: Path) -> None:
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(to_document(first), sort_keys=False))
    same(first, load_topology(again, environ={}))


def same(first, second) -> None:
    assert second.name == first.name
    assert second.services == first.services
    assert second.bases == first.bases
    assert second.mocks == first.mocks
    assert second.secrets == first.secrets
    assert second.volumes == first.volumes


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_reloads_as_the_same_topology(tmp_path: Path, path: Path) -> None:
    assert_reloads_the_same(load_topology(path, environ={}), tmp_path)


def test_every_literal_dollar_is_escaped(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(textwrap.dedent("""\
        services:
          web:
            image: "nginx:$${NOT_A_VARIABLE}"
            working_dir: /srv/$$HOME
            user: "${WHO:-$$me}"
            command: echo $$PATH
            environment: {PRICE: "$$5", REF: "${web.host}"}
            healthcheck: {test: [CMD-SHELL, "test $$x = 1"]}
            ports: ["80"]
        """))
    first = load_topology(compose, environ={})
    assert first.services["web"].image == "nginx:${NOT_A_VARIABLE}"
    assert_reloads_the_same(first, tmp_path)


def test_secrets_are_masked_only_where_they_stand_as_values(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(textwrap.dedent("""\
        services:
          db:
            image: postgres:15-alpine
            working_dir: /postgres
            environment:
              POSTGRES_PASSWORD: postgres
              DATABASE_URL: postgresql://app:postgres@db/app
        """))
    document = to_document(load_topology(compose, environ={}), secrets={"postgres"})
    db = document["services"]["db"]
    assert db["image"] == "postgres:15-alpine"
    assert db["working_dir"] == "/postgres"
    assert db["environment"] == {"POSTGRES_PASSWORD": "******", "DATABASE_URL": "postgresql://app:******@db/app"}


def test_config_finds_a_compose_file_and_lists_what_it_changed(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "docker-compose.yml").write_text('version: "3.8"\nservices: {web: {image: nginx, ports: ["[::1]:8080:80"]}}\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["config"], env={"ENVCTL_FILE": None, "COMPOSE_FILE": None})
    assert result.exit_code == 0, result.output
    assert "8080:80" in result.output and "127.0.0.1 only" in result.output  # said, on stderr
    assert "# version: ignored, as Compose v2 ignores it" in result.output
    assert "image: nginx" in result.output


def test_file_options_go_before_or_after_the_command_and_merge(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("services: {web: {image: nginx}}\n")
    second = tmp_path / "b.yaml"
    second.write_text("services: {web: {image: nginx:1.27}}\n")
    runner = CliRunner()
    env = {"ENVCTL_FILE": None, "COMPOSE_FILE": None}
    for args in (["config", "-f", str(first), "-f", str(second)],
                 ["-f", str(first), "config", "--file", str(second)],
                 ["-f", str(first), "-f", str(second), "config"]):
        result = runner.invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
        assert "image: nginx:1.27" in result.output
    result = runner.invoke(main, ["config"], env={"ENVCTL_FILE": None, "COMPOSE_FILE": f"{first}:{second}"})
    assert "image: nginx:1.27" in result.output


def test_env_files_replace_dotenv_before_or_after_the_command(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {web: {image: 'nginx:${TAG}'}}\n")
    (tmp_path / ".env").write_text("TAG=from-dotenv\n")
    (tmp_path / "a.env").write_text("TAG=a\nBASE=1\n")
    (tmp_path / "b.env").write_text("TAG=b-${BASE}\n")
    env = {"ENVCTL_FILE": None, "COMPOSE_FILE": None, "TAG": None}
    runner = CliRunner()
    for args in (["-f", str(tmp_path / "compose.yaml"), "--env-file", str(tmp_path / "a.env"), "config"],
                 ["config", "-f", str(tmp_path / "compose.yaml"), "--env-file", str(tmp_path / "a.env"),
                  "--env-file", str(tmp_path / "b.env")]):
        result = runner.invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
    assert "image: nginx:b-1" in result.output
    result = runner.invoke(main, ["config", "-f", str(tmp_path / "compose.yaml"), "--env-file", "missing.env"], env=env)
    assert result.exit_code != 0 and "no env file here" in str(result.exception or result.output)


def test_only_commands_that_start_containers_need_the_opt_ins(tmp_path: Path, monkeypatch) -> None:
    """A run started with `--allow` is seen and taken down without it."""
    (tmp_path / "compose.yaml").write_text("services: {web: {image: nginx, privileged: true, ports: ['0.0.0.0::80']}}\n")
    monkeypatch.chdir(tmp_path)
    env = {"ENVCTL_FILE": None, "COMPOSE_FILE": None, "ENVCTL_ALLOW": None, "ENVCTL_RUN": None}  # as outside envctl ci
    refused = CliRunner().invoke(main, ["config"], env=env)
    assert refused.exit_code == 1 and "publish-beyond-loopback" in str(refused.exception)
    looked = CliRunner().invoke(main, ["status"], env=env)
    assert looked.exit_code == 1 and "no run of" in str(looked.exception)  # past loading the file
    allowed = CliRunner().invoke(main, ["--allow", "privileged", "--allow", "publish-beyond-loopback", "config"], env=env)
    assert allowed.exit_code == 0 and "host_ip: 0.0.0.0" in allowed.output
