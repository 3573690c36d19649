"""Content-hash images: no-op builds build nothing, mtime changes nothing, one byte rebuilds one image."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from envctl.backend import engine as eng
from envctl.backend.engine import Engine
from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.errors import BuildFailed
from envctl.images.builder import ImageBuilder, project_images, prune_images
from envctl.topology import load_topology

pytestmark = pytest.mark.integration


class CountingEngine(Engine):
    """The real engine, counting the builds it is asked for."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.client)
        self.builds: list[str] = []

    def build(self, context, **kwargs):  # type: ignore[override]
        self.builds.append(kwargs["tag"])
        return super().build(context, **kwargs)


def built(stack_dir: Path, engine: Engine) -> tuple[dict, list[str]]:
    counting = CountingEngine(engine)
    topology = load_topology(stack_dir / "envctl.yaml", environ={})
    images = ImageBuilder(topology, counting).ensure()
    return images, counting.builds


def test_nothing_changed_means_no_docker_build(stack_dir: Path, engine: Engine) -> None:
    built(stack_dir, engine)
    images, builds = built(stack_dir, engine)
    assert builds == []
    assert not any(image.built for image in images.values())


def test_touching_files_rebuilds_nothing(stack_dir: Path, engine: Engine) -> None:
    built(stack_dir, engine)
    later = time.time() + 7200
    for path in stack_dir.rglob("*"):
        os.utime(path, (later, later))
    _, builds = built(stack_dir, engine)
    assert builds == []


def test_one_byte_in_one_context_rebuilds_that_image_alone(stack_dir: Path, engine: Engine) -> None:
    first, _ = built(stack_dir, engine)
    app = stack_dir / "backend" / "app.py"
    app.write_text(app.read_text() + "#")
    second, _ = built(stack_dir, engine)
    # Made again: by the builder, or assembled without it (a code-only Dockerfile, no engine.build call).
    assert [key for key, image in second.items() if image.built] == ["service:backend"]
    assert second["service:backend"].ref != first["service:backend"].ref
    assert {k: v.ref for k, v in second.items() if k != "service:backend"} == \
           {k: v.ref for k, v in first.items() if k != "service:backend"}


def test_service_images_share_the_base_layers_and_carry_labels(stack_dir: Path, engine: Engine) -> None:
    images, _ = built(stack_dir, engine)
    base_layers = engine.inspect_image(images["base:os"].ref)["RootFS"]["Layers"]
    for key in ("service:store", "service:backend", "service:api"):
        info = engine.inspect_image(images[key].ref)
        assert info["RootFS"]["Layers"][: len(base_layers)] == base_layers
        labels = info["Config"]["Labels"]
        assert labels[eng.PROJECT] == "envctl-test" and labels[eng.INPUT_HASH] == images[key].ref.split(":")[1]


def test_the_base_trusts_the_host_ca_bundle(stack_dir: Path, engine: Engine) -> None:
    images, _ = built(stack_dir, engine)
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not host_bundle.is_file():
        pytest.skip("this host has no CA bundle to trust")
    container = engine.client.containers.run(images["base:os"].ref, ["cat", "/etc/ssl/certs/ca-certificates.crt"],
                                             remove=True, labels={eng.PROJECT: "envctl-test"})
    assert container == host_bundle.read_bytes()
    env = engine.inspect_image(images["base:os"].ref)["Config"]["Env"]
    assert "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt" in env


def test_a_failing_build_shows_the_step_and_the_last_lines(stack_dir: Path, engine: Engine) -> None:
    (stack_dir / "api" / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo compiling the api && echo 'error: no such module' && exit 4\n")
    topology = load_topology(stack_dir / "envctl.yaml", environ={})
    with pytest.raises(BuildFailed) as caught:
        ImageBuilder(topology, engine).ensure(["api"])
    text = str(caught.value)
    dockerfile = stack_dir / "api" / "Dockerfile"
    # The builder builds the Dockerfile up to its RUN, without envctl's LABEL: the user's own step count.
    assert f"building service 'api' ({dockerfile}) failed at Step 3/3 : RUN echo compiling the api" in text
    assert "error: no such module" in text
    assert str(stack_dir / ".envctl" / "builds" / "api.log") in text


def test_a_base_on_a_base_and_the_git_commit_label(stack_dir: Path, engine: Engine) -> None:
    subprocess.run(["git", "init", "-q"], cwd=stack_dir, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=stack_dir, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=stack_dir, capture_output=True, text=True).stdout.strip()
    (stack_dir / "tools.Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY tools.Dockerfile /etc/tools\n")
    path = stack_dir / "envctl.yaml"
    path.write_text(path.read_text().replace(
        "services:\n", "  tools:\n    from: os\n    dockerfile: tools.Dockerfile\nservices:\n", 1).replace(
        "    build: api\n    command: [python3, -u, /app/app.py]\n    base: os",
        "    build: api\n    command: [python3, -u, /app/app.py]\n    base: tools"))
    topology = load_topology(path, environ={})
    images = ImageBuilder(topology, engine).ensure(["api"])
    tools_layers = engine.inspect_image(images["base:tools"].ref)["RootFS"]["Layers"]
    os_layers = engine.inspect_image(images["base:os"].ref)["RootFS"]["Layers"]
    api = engine.inspect_image(images["service:api"].ref)
    assert tools_layers[: len(os_layers)] == os_layers
    assert api["RootFS"]["Layers"][: len(tools_layers)] == tools_layers
    assert api["Config"]["Labels"][eng.GIT_COMMIT] == commit


def test_prune_removes_stale_images_but_never_one_in_use(stack_dir: Path, engine: Engine, stack_env) -> None:
    first, _ = built(stack_dir, engine)
    running = run_api.up(load_topology(stack_dir / "envctl.yaml", environ=stack_env), engine, services=["store"])
    app = stack_dir / "store" / "app.py"
    app.write_text(app.read_text() + "# changed\n")
    second, _ = built(stack_dir, engine)
    topology = load_topology(stack_dir / "envctl.yaml", environ=stack_env)
    try:
        rows = {row.ref: row for row in project_images(topology, engine)}
        stale = rows[first["service:store"].ref]
        assert not stale.current and stale.in_use and rows[second["service:store"].ref].current
        assert first["service:store"].ref not in [row.ref for row in prune_images(topology, engine)]
    finally:
        teardown.down(topology, engine, running.run)
    removed = [row.ref for row in prune_images(topology, engine)]
    assert first["service:store"].ref in removed
    assert engine.image_id(first["service:store"].ref) is None
    for image in second.values():
        assert engine.image_id(image.ref) is not None
