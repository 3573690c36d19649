"""A tail the assembler leaves to the builder after the builder made the prefix: the builder's image of the
whole Dockerfile, made from its cache, and no untagged prefix left behind."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from envctl.backend.engine import Engine
from envctl.errors import BuildFailed
from envctl.images.builder import ImageBuilder
from envctl.topology import load_topology

from tests.integration.conftest import add_services

pytestmark = pytest.mark.integration


def dangling(engine: Engine) -> set[str]:
    return set(engine.api.images(filters={"dangling": True}, quiet=True))


@pytest.mark.parametrize("tail, fails", [
    ("COPY app.py link /opt/\n", False),  # the builder copies what `link` points to; the assembler refuses it
    ("COPY missing.py /opt/\n", True),  # the assembler refuses it; the builder fails on it, after the prefix
])
def test_a_prefix_whose_tail_the_assembler_refused_is_no_dangling_image(
        engine: Engine, stack_dir: Path, monkeypatch: pytest.MonkeyPatch, tail: str, fails: bool) -> None:
    token = os.urandom(6).hex()  # a RUN no earlier test left in the builder's cache
    context = stack_dir / "linked"
    context.mkdir()
    (context / "Dockerfile").write_text(f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {token} > /stamp\n" + tail)
    (context / "app.py").write_text("print('linked')\n")
    (context / "link").symlink_to("app.py")
    add_services(stack_dir, "  linked:\n    build: {context: linked}\n    base: os\n")
    monkeypatch.setenv("ENVCTL_ASSEMBLE", "1")
    before = dangling(engine)
    topology = load_topology(stack_dir / "envctl.yaml", environ={})
    if fails:
        with pytest.raises(BuildFailed):
            ImageBuilder(topology, engine).ensure(["linked"])
        assert dangling(engine) == before  # the prefix went
        return
    image = ImageBuilder(topology, engine).ensure(["linked"])["service:linked"]
    try:
        log = (stack_dir / ".envctl" / "builds" / "linked.log").read_text()
        assert "symbolic link" in log and "envctl: assembled" not in log, log
        assert "Using cache" in log  # the builder's image took the prefix's steps from its cache
        history = [step["CreatedBy"] for step in engine.image_history(image.ref)]
        assert any(token in step for step in history)
        assert dangling(engine) == before  # the prefix is the image's parent
    finally:
        engine.remove_image(image.ref)
    assert dangling(engine) == before
