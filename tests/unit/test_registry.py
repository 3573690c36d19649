"""Registries without a registry: names, locations, settings, tags, FROM images, errors, the timeline."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from envctl.backend.engine import _registry_error
from envctl.errors import EnvctlError, RegistryError, TopologyError
from envctl.topology.imageref import parse_image_reference, parse_registry_location, registry_location_problem
from envctl.images.registry import from_images, location_setting, release_tags
from envctl.observation.timeline import as_text, build_timeline
from envctl.topology import load_topology

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, name, registry, pin", [
    ("postgres:16", "postgres", None, "16"),
    ("postgres", "postgres", None, "latest"),
    ("127.0.0.1:5000/team/app:1.2", "127.0.0.1:5000/team/app", "127.0.0.1:5000", "1.2"),
    ("localhost:5000/app", "localhost:5000/app", "localhost:5000", "latest"),
    (f"registry.example.com/app@{DIGEST}", "registry.example.com/app", "registry.example.com", DIGEST),
    (f"127.0.0.1:5000/app:1@{DIGEST}", "127.0.0.1:5000/app", "127.0.0.1:5000", DIGEST),
])
def test_image_names_parse_as_docker_parses_them(text: str, name: str, registry: str | None, pin: str) -> None:
    reference = parse_image_reference(text)
    assert (reference.name, reference.registry, reference.pin) == (name, registry, pin)
    assert str(reference) == text


def test_registry_locations_need_a_host_and_take_a_prefix() -> None:
    location = parse_registry_location("127.0.0.1:5000/ci/cache")
    assert location.repository("shop/orders") == "127.0.0.1:5000/ci/cache/shop/orders"
    assert parse_registry_location("localhost:5000").repository("shop/orders") == "localhost:5000/shop/orders"
    assert registry_location_problem("team") and registry_location_problem("reg.example.com/Team")


def test_the_flag_beats_the_environment_beats_the_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVCTL_CACHE", "env.example.com/c")
    assert str(location_setting("flag.example.com/c", "ENVCTL_CACHE", "topo.example.com/c", "cache")) == "flag.example.com/c"
    assert str(location_setting(None, "ENVCTL_CACHE", "topo.example.com/c", "cache")) == "env.example.com/c"
    monkeypatch.delenv("ENVCTL_CACHE")
    assert str(location_setting(None, "ENVCTL_CACHE", "topo.example.com/c", "cache")) == "topo.example.com/c"
    assert location_setting(None, "ENVCTL_CACHE", None, "cache") is None
    monkeypatch.setenv("ENVCTL_CACHE", "not a host")
    with pytest.raises(EnvctlError, match=r"\$ENVCTL_CACHE: 'not a host' is not a registry location"):
        location_setting(None, "ENVCTL_CACHE", None, "cache")


def test_release_tags_name_the_commit_and_a_tag_safe_branch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert release_tags(tmp_path, branch=True) == []  # not a checkout
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "feature/Fast_path"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    monkeypatch.delenv("BRANCH_NAME", raising=False)
    monkeypatch.delenv("GIT_BRANCH", raising=False)
    assert release_tags(tmp_path) == [f"git-{commit[:12]}"]
    assert release_tags(tmp_path, branch=True) == [f"git-{commit[:12]}", "feature-Fast_path"]
    monkeypatch.setenv("GIT_BRANCH", "origin/main")  # Jenkins, on a detached HEAD
    assert release_tags(tmp_path, branch=True)[1] == "main"


def test_from_images_fills_build_args_and_skips_stages_and_scratch(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE\nARG PG=16\nFROM ${BASE_IMAGE} AS build\nRUN true\n"
                          "FROM 127.0.0.1:5000/lib/postgres:$PG\nCOPY --from=build /a /a\n"
                          "FROM build\nFROM scratch\nFROM $UNSET\n")
    assert from_images(dockerfile, {"BASE_IMAGE": "shop/base-os:abc"}) == ["shop/base-os:abc",
                                                                          "127.0.0.1:5000/lib/postgres:16"]


@pytest.mark.parametrize("text, reason", [
    ("manifest for 127.0.0.1:5000/x:1 not found: manifest unknown: manifest unknown", RegistryError.NOT_FOUND),
    ("Head \"http://127.0.0.1:5000/v2/x/manifests/1\": no basic auth credentials", RegistryError.UNAUTHORIZED),
    ("unauthorized: authentication required", RegistryError.UNAUTHORIZED),
    ("Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused", RegistryError.UNREACHABLE),
    ("received unexpected HTTP status: 500 Internal Server Error", RegistryError.SERVER),
    ("unknown: registry is in read-only mode", RegistryError.REFUSED),
])
def test_a_registry_answer_becomes_one_error_with_its_fix(text: str, reason: str) -> None:
    error = _registry_error("pull", "127.0.0.1:5000/x:1", text)
    assert error.reason == reason and error.fix
    assert error.message.startswith("cannot pull 127.0.0.1:5000/x:1: ")
    assert error.transient == (reason in (RegistryError.UNREACHABLE, RegistryError.SERVER))


def test_topology_keys_for_registries_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "envctl.yaml"
    path.write_text("name: t\nregistry: nohost\ncache: 127.0.0.1:5000/ci\nservices:\n"
                    "  web: {image: 'postgres:16', pull_policy: build}\n"
                    "  api: {image: 'postgres:16', pull_policy: sometimes}\n")
    with pytest.raises(TopologyError) as caught:
        load_topology(path, environ={})
    text = str(caught.value)
    assert "envctl.yaml:2: registry: 'nohost' is not a registry location" in text
    assert "services.web.pull_policy: 'pull_policy: build' needs a 'build:'" in text
    assert "services.api.pull_policy: 'sometimes' is not a pull policy" in text
    path.write_text("name: t\nregistry: reg.example.com:5000/team\ncache: 127.0.0.1:5000/ci\nservices:\n"
                    f"  db: {{image: 'reg.example.com:5000/pg@{DIGEST}', pull_policy: never}}\n")
    topology = load_topology(path, environ={})
    assert (topology.registry, topology.cache) == ("reg.example.com:5000/team", "127.0.0.1:5000/ci")
    assert topology.services["db"].pull_policy == "never"


def test_pulls_and_pushes_are_phases_of_their_own_on_the_timeline() -> None:
    events = [
        {"subject": "db", "phase": "pull", "detail": "postgres:16", "t": 0.0},
        {"subject": "db", "phase": "pulled", "detail": "", "t": 3.0},
        {"subject": "api", "phase": "pull", "detail": "from the image cache", "t": 0.0},
        {"subject": "api", "phase": "build", "detail": "", "t": 0.5},  # a cache miss
        {"subject": "api", "phase": "built", "detail": "", "t": 4.5},
        {"subject": "api", "phase": "push", "detail": "", "t": 4.5},
        {"subject": "api", "phase": "pushed", "detail": "", "t": 5.0},
    ]
    images = {r.name: r for r in build_timeline("r", events, {}).rows if r.kind == "image"}
    assert [(s.phase, s.seconds) for s in images["db"].spans] == [("pull", 3.0)]
    assert [(s.phase, s.seconds) for s in images["api"].spans] == [("pull", 0.5), ("image", 4.0), ("push", 0.5)]
    text = as_text(build_timeline("r", events, {}))
    assert "images pulled: api 0.5s, db 3.0s" in text and "images built: api 4.0s" in text


class EngineWith:
    """Just enough of an engine for the pull policy: which images it has, and what was pulled."""

    def __init__(self, *present: str) -> None:
        self.present = set(present)
        self.pulled: list[tuple[str, str]] = []

    def image_id(self, ref: str) -> str | None:
        return f"sha256:{ref}" if ref in self.present else None

    def pull(self, repository: str, pin: str, on_layer, platform=None) -> str:
        self.pulled.append((repository, pin))
        return f"sha256:{repository}:{pin}"


def test_pull_policies_decide_when_to_pull() -> None:
    from envctl.images.registry import ensure_pulled

    engine = EngineWith("postgres:16")
    assert ensure_pulled(engine, "postgres:16", "missing", print) == "sha256:postgres:16" and not engine.pulled
    ensure_pulled(engine, "postgres:16", "always", print)
    ensure_pulled(engine, f"127.0.0.1:5000/pg@{DIGEST}", "missing", print)
    assert engine.pulled == [("postgres", "16"), ("127.0.0.1:5000/pg", DIGEST)]
    with pytest.raises(EnvctlError, match="redis:7 is not on the engine, and its pull_policy is 'never'"):
        ensure_pulled(engine, "redis:7", "never", print)
    # A name Docker would refuse is said before the engine is asked (Compose files may hold one
    # that `envctl config` prints unchanged; only using it is an error).
    with pytest.raises(EnvctlError, match="service 'db': 'Bad Name' is not a valid image name") as caught:
        ensure_pulled(engine, "Bad Name", "missing", print, what="service 'db'")
    assert caught.value.fix and "postgres:16" in caught.value.fix
