"""Registries, for real: pulls (with and without credentials), pushes tagged by commit, the image cache.

Every registry here is Debian's docker-registry on 127.0.0.1, started per test with its own
storage. Images of other projects are never removed; each test removes what it made.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envctl.backend import engine as eng
from envctl.backend.engine import Engine
from envctl.errors import EnvctlError
from envctl.images.builder import ImageBuilder
from envctl.topology import load_topology
from tests.integration.conftest import PROJECT, STACK, Background, envctl, free_port
from tests.integration.registries import FailingRegistry, Registry, docker_config

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Registry-Passw0rd"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    server = Registry(tmp_path / "registry")
    yield server
    server.close()


@pytest.fixture(scope="module")
def base_ref(engine: Engine, session_images: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test stack's base (python3 on Debian), built once by the session."""
    root = tmp_path_factory.mktemp("stack")
    shutil.copytree(STACK, root, dirs_exist_ok=True)
    return ImageBuilder(load_topology(root / "envctl.yaml", environ={}), engine).ensure(["store"])["base:os"].ref


def publish(engine: Engine, image: str, repository: str, tag: str, auth: dict | None = None) -> str:
    """Put `image` into a registry as repository:tag; the local registry tag is removed again."""
    engine.tag(image, repository, tag)
    try:
        for chunk in engine.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
            assert "error" not in chunk, chunk
    finally:
        engine.remove_image(f"{repository}:{tag}")
    return f"{repository}:{tag}"


def remove_project_images(engine: Engine, project: str) -> None:
    """Remove every image of `project` (a project name only this module uses)."""
    for _ in range(3):  # children before parents
        for image in engine.images({eng.PROJECT: project}):
            for ref in image.get("RepoTags") or [image["Id"]]:
                try:
                    engine.remove_image(ref)
                except EnvctlError:
                    pass


def write_topology(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "envctl.yaml").write_text(text)
    return directory


def no_secret_anywhere(secret: str, directory: Path, *outputs: str) -> None:
    for output in outputs:
        assert secret not in output
    for path in directory.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


# -- pulls ----------------------------------------------------------------------------------

def test_an_image_service_is_pulled_from_the_registry_with_progress(engine: Engine, registry: Registry,
                                                                    base_ref: str, tmp_path: Path) -> None:
    remote = publish(engine, base_ref, f"{registry.host}/lib/pyos", "1")
    port = free_port()
    root = write_topology(tmp_path / "pulls", f"""
name: envctl-regpull
services:
  web:
    image: {remote}
    command: [python3, -m, http.server, "8000"]
    ports: ["{port}:8000"]
    probe: {{tcp: 8000, timeout: 60s}}
""")
    try:
        result = envctl(["up"], root, {})
        timeline = envctl(["timeline"], root, {}).stdout
        envctl(["down", "--no-logs"], root, {})
        assert f"web                  pull  {remote}" in result.stderr
        assert f"web                  pulled  {remote}" in result.stderr
        assert "images pulled: web" in timeline  # a phase of its own, not a build
    finally:
        engine.remove_image(remote)


def test_a_from_image_a_build_needs_is_pulled_first(engine: Engine, registry: Registry, base_ref: str,
                                                   tmp_path: Path) -> None:
    remote = publish(engine, base_ref, f"{registry.host}/lib/pyos", "3")
    root = write_topology(tmp_path / "from", "name: envctl-regfrom\nservices:\n  app:\n    build: app\n")
    (root / "app").mkdir()
    (root / "app" / "Dockerfile").write_text(f"ARG TAG=3\nFROM {registry.host}/lib/pyos:$TAG\nRUN true\n")
    try:
        result = envctl(["build"], root, {})
        assert f"app                  pull  {remote}" in result.stderr
        assert "1 built" in result.stdout
    finally:
        remove_project_images(engine, "envctl-regfrom")
        engine.remove_image(remote)


def test_pull_with_credentials_from_the_docker_config_and_never_shows_them(engine: Engine, base_ref: str,
                                                                           tmp_path: Path) -> None:
    server = Registry(tmp_path / "auth-registry", user="ci", password=PASSWORD)
    try:
        remote = publish(engine, base_ref, f"{server.host}/lib/pyos", "2",
                         auth={"username": "ci", "password": PASSWORD})
        root = write_topology(tmp_path / "auth", f"name: envctl-regauth\nservices:\n  web:\n    image: {remote}\n")
        good = docker_config(tmp_path / "good-config", server.host, "ci", PASSWORD)
        result = envctl(["pull"], root, {"DOCKER_CONFIG": str(good)})
        assert remote in result.stdout and "1 pulled" in result.stdout
        engine.remove_image(remote)

        wrong = docker_config(tmp_path / "wrong-config", server.host, "ci", PASSWORD + "-wrong")
        denied = envctl(["pull"], root, {"DOCKER_CONFIG": str(wrong)}, check=False)
        assert denied.returncode == 1
        assert f"cannot pull {remote}: not authorized" in denied.stderr
        assert f"docker login {server.host}" in denied.stderr
        assert "Traceback" not in denied.stderr
        no_secret_anywhere(PASSWORD, root, denied.stdout, denied.stderr, result.stdout, result.stderr)

        anonymous = envctl(["pull"], root, {"DOCKER_CONFIG": str(tmp_path / "empty-config")}, check=False)
        assert anonymous.returncode == 1 and "not authorized" in anonymous.stderr
        assert engine.image_id(remote) is None
    finally:
        engine.remove_image(f"{server.host}/lib/pyos:2")
        server.close()


def test_an_unknown_image_is_one_clear_error(registry: Registry, tmp_path: Path) -> None:
    root = write_topology(tmp_path / "unknown", f"name: envctl-regunknown\nservices:\n  web:\n"
                                                f"    image: {registry.host}/lib/nothing-here:1\n")
    result = envctl(["up"], root, {}, check=False)
    assert result.returncode == 1
    assert f"cannot pull {registry.host}/lib/nothing-here:1: not found" in result.stderr
    assert "Fix: check the name and tag" in result.stderr and "Traceback" not in result.stderr


def test_a_name_that_is_not_an_image_reference_is_one_clear_error(engine: Engine, tmp_path: Path) -> None:
    root = write_topology(tmp_path / "badname", "name: envctl-regbadname\nservices:\n  web:\n    image: 'Web App:1'\n")
    result = envctl(["up"], root, {}, check=False)
    assert result.returncode == 1
    assert "service 'web': 'Web App:1' is not a valid image name" in result.stderr and "Fix: write NAME" in result.stderr
    assert "Traceback" not in result.stderr
    assert not engine.networks({eng.PROJECT: "envctl-regbadname"})
    assert not engine.containers({eng.PROJECT: "envctl-regbadname"})


def test_a_registry_that_answers_500_is_retried_then_a_clear_error(tmp_path: Path) -> None:
    failing = FailingRegistry()
    try:
        root = write_topology(tmp_path / "failing", f"name: envctl-reg500\nservices:\n  web:\n"
                                                    f"    image: {failing.host}/lib/app:1\n")
        result = envctl(["pull"], root, {}, check=False)
        assert result.returncode == 1
        assert f"cannot pull {failing.host}/lib/app:1: registry error" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        failing.close()


def test_a_registry_stopped_mid_pull_fails_cleanly(engine: Engine, registry: Registry, tmp_path: Path) -> None:
    # An image big enough that its pull is still running when the registry stops.
    data = tmp_path / "big.tar"
    with tarfile.open(data, "w") as tar:
        for index in range(4):
            blob = os.urandom(48 * 1024 * 1024)
            entry = tarfile.TarInfo(f"blob-{index}")
            entry.size = len(blob)
            tar.addfile(entry, io.BytesIO(blob))
    repository = f"{registry.host}/lib/big"
    engine.import_rootfs(data, repository, "1", ['LABEL "envctl.project"="envctl-regbig"'])
    data.unlink()
    for chunk in engine.api.push(repository, tag="1", stream=True, decode=True):
        assert "error" not in chunk, chunk
    engine.remove_image(f"{repository}:1")
    root = write_topology(tmp_path / "big", f"name: envctl-regbig\nservices:\n  web:\n    image: {repository}:1\n")
    pulling = Background(["pull"], root, {})
    try:
        pulling.wait_for(r"web\s+pull\s")
        time.sleep(0.5)
        registry.stop()
        code = pulling.wait()
    finally:
        if pulling.process.poll() is None:
            pulling.kill_group()
        remove_project_images(engine, "envctl-regbig")
    assert code == 1, pulling.output
    assert f"cannot pull {repository}:1" in pulling.output and "Traceback" not in pulling.output
    assert engine.image_id(f"{repository}:1") is None


# -- pushes ---------------------------------------------------------------------------------

def git_checkout(directory: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    git("init", "-q", "-b", "feature/x")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "stack")
    return git("rev-parse", "HEAD")


def test_build_push_tags_images_by_content_hash_and_commit(engine: Engine, registry: Registry, stack_dir: Path,
                                                           stack_env: dict[str, str]) -> None:
    commit = git_checkout(stack_dir)
    result = envctl(["build", "store", "--push", "--registry", f"{registry.host}/ci", "--tag-branch"],
                    stack_dir, {**stack_env, "BRANCH_NAME": ""})
    topology = load_topology(stack_dir / "envctl.yaml", environ=stack_env)
    store = ImageBuilder(topology, engine).ensure(["store"])["service:store"].ref
    hash_tag = store.rsplit(":", 1)[1]
    tags = registry.tags(f"ci/{PROJECT}/store")
    assert {hash_tag, f"git-{commit[:12]}", "feature-x"} <= tags, (tags, result.stdout)
    assert f"ci/{PROJECT}/base-os" in registry.catalog()
    assert f"pushed {registry.host}/ci/{PROJECT}/store: {hash_tag}, git-{commit[:12]}, feature-x" in result.stdout
    leftovers = [t for i in engine.images({eng.PROJECT: PROJECT}) for t in i.get("RepoTags") or []
                 if t.startswith(registry.host)]
    assert not leftovers


def test_push_to_a_read_only_registry_is_a_clear_error(engine: Engine, tmp_path: Path, stack_dir: Path,
                                                       stack_env: dict[str, str]) -> None:
    server = Registry(tmp_path / "readonly", readonly=True)
    try:
        result = envctl(["push", "store"], stack_dir, {**stack_env, "ENVCTL_REGISTRY": f"{server.host}/ci"},
                        check=False)
        assert result.returncode == 1, result.stderr
        assert f"cannot push {server.host}/ci/{PROJECT}/" in result.stderr and "Traceback" not in result.stderr
        leftovers = [t for i in engine.images({eng.PROJECT: PROJECT}) for t in i.get("RepoTags") or []
                     if t.startswith(server.host)]
        assert not leftovers
    finally:
        server.close()


def test_push_without_a_registry_says_where_to_name_one(stack_dir: Path, stack_env: dict[str, str]) -> None:
    result = envctl(["push"], stack_dir, {**stack_env, "ENVCTL_REGISTRY": ""}, check=False)
    assert result.returncode == 1 and "no registry to push to" in result.stderr and "--registry" in result.stderr


# -- the shared cache -----------------------------------------------------------------------

CACHE_PROJECT = "envctl-regcache"


@pytest.fixture
def cache_stack(stack_dir: Path, engine: Engine, base_ref: str) -> Iterator[Path]:
    """The test stack as a project of its own, on the session's base image (no second bootstrap)."""
    path = stack_dir / "envctl.yaml"
    text = path.read_text().replace("name: envctl-test", f"name: {CACHE_PROJECT}")
    text = text.replace("bootstrap: {distro: debian, suite: bookworm, packages: [python3, ca-certificates]}",
                        f"image: {base_ref}")
    path.write_text(text)
    yield stack_dir
    remove_project_images(engine, CACHE_PROJECT)


def built_count(output: str) -> int:
    return int(output.split(" images built)")[0].rsplit(", ", 1)[1])


def test_cache_miss_builds_and_pushes_then_a_fresh_engine_builds_nothing(
        engine: Engine, registry: Registry, cache_stack: Path, stack_env: dict[str, str]) -> None:
    env = {**stack_env, "ENVCTL_CACHE": f"{registry.host}/cache"}
    remove_project_images(engine, CACHE_PROJECT)

    miss = envctl(["up", "store"], cache_stack, env)
    envctl(["down", "--no-logs"], cache_stack, env)
    assert built_count(miss.stdout) == 2  # the base's CA layer and store
    topology = load_topology(cache_stack / "envctl.yaml", environ=env)
    expected = ImageBuilder(topology, engine).ensure(["store"])
    for key in ("base:os", "service:store"):
        repository, tag = expected[key].ref.rsplit(":", 1)
        assert tag in registry.tags(f"cache/{repository}"), key

    remove_project_images(engine, CACHE_PROJECT)  # a fresh agent: none of the run's images
    hit = envctl(["up", "store"], cache_stack, env)
    envctl(["down", "--no-logs"], cache_stack, env)
    assert built_count(hit.stdout) == 0, hit.stderr
    assert "from the image cache" in hit.stderr and "warning" not in hit.stderr
    rows = envctl(["images"], cache_stack, env).stdout
    store_row = next(line for line in rows.splitlines() if line.startswith(f"{CACHE_PROJECT}/store:"))
    assert " cache " in store_row and "current" in store_row
    assert engine.inspect_image(expected["service:store"].ref)["Id"] == expected["service:store"].id


def test_an_unreachable_cache_warns_once_and_builds(engine: Engine, registry: Registry, cache_stack: Path,
                                                    stack_env: dict[str, str]) -> None:
    registry.stop()
    env = {**stack_env, "ENVCTL_CACHE": f"{registry.host}/cache"}
    remove_project_images(engine, CACHE_PROJECT)
    result = envctl(["up", "store"], cache_stack, env)
    envctl(["down", "--no-logs"], cache_stack, env)
    assert built_count(result.stdout) == 2
    assert result.stderr.count("warning: cannot pull from the image cache") == 1, result.stderr


def test_a_cache_image_whose_hash_label_differs_is_not_used(engine: Engine, registry: Registry, cache_stack: Path,
                                                             stack_env: dict[str, str], base_ref: str) -> None:
    env = {**stack_env, "ENVCTL_CACHE": f"{registry.host}/cache"}
    remove_project_images(engine, CACHE_PROJECT)
    envctl(["build", "store"], cache_stack, env)  # fills the cache
    topology = load_topology(cache_stack / "envctl.yaml", environ=env)
    store = ImageBuilder(topology, engine).ensure(["store"])["service:store"]
    repository, tag = store.ref.rsplit(":", 1)
    publish(engine, base_ref, f"{registry.host}/cache/{repository}", tag)  # another image under store's hash
    engine.remove_image(store.ref)
    result = envctl(["build", "store"], cache_stack, env)
    assert "has content hash" in result.stderr and f"{repository}:{tag}" in result.stdout
    assert engine.inspect_image(store.ref)["Config"]["Labels"][eng.INPUT_HASH] == tag
    assert engine.image_id(f"{registry.host}/cache/{repository}:{tag}") is None
