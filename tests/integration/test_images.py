"""Content-hash images: no-op builds build nothing, mtime changes nothing, one byte rebuilds one image."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from envctl import engine as eng
from envctl.engine import Engine
from envctl.images import ImageBuilder
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
    second, builds = built(stack_dir, engine)
    assert len(builds) == 1 and builds[0].startswith("envctl-test/backend:")
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
