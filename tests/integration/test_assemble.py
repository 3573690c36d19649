"""An assembled code-only image is the builder's image: same files, modes, owners and config; same inputs, same id."""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from envctl.backend.engine import Engine
from envctl.images.builder import ImageBuilder
from envctl.topology import load_topology

from tests.integration.conftest import add_services

pytestmark = pytest.mark.integration

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG GREETING=hello
ENV APP_HOME=/srv/app GREETING=$GREETING
WORKDIR /srv/app
COPY app.py ./
COPY lib ./lib/
COPY tools/run.sh /usr/local/bin/run-app
COPY conf /etc/
COPY . /ctx/
USER 1000:1000
EXPOSE 8000 9000/udp
LABEL org.example.team=shop "with space"="a b"
ENTRYPOINT ["python3"]
CMD ["app.py"]
"""
COMPARED_PATHS = ("/srv", "/ctx", "/usr/local/bin", "/etc")  # /etc: a directory the base has
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "StopSignal")


@pytest.fixture
def codeonly_stack(stack_dir: Path) -> Path:
    context = stack_dir / "codeonly"
    (context / "lib" / "inner").mkdir(parents=True)
    (context / "tools").mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "app.py").write_text("print('hello')\n")
    (context / "lib" / "__init__.py").write_text("")
    (context / "lib" / "inner" / "deep.py").write_text("X = 1\n")
    os.chmod(context / "lib" / "inner", 0o750)
    (context / "tools" / "run.sh").write_text("#!/bin/sh\nexec python3 /srv/app/app.py\n")
    os.chmod(context / "tools" / "run.sh", 0o755)
    (context / "conf" / "app.d").mkdir(parents=True)
    os.chmod(context / "conf" / "app.d", 0o700)
    (context / "conf" / "app.d" / "app.conf").write_text("level = info\n")
    (context / "secret.txt").write_text("kept out by .dockerignore\n")
    (context / ".dockerignore").write_text("secret.txt\n")
    add_services(stack_dir, "  codeonly:\n    build: {context: codeonly, args: {GREETING: hi}}\n    base: os\n")
    return stack_dir


@pytest.fixture
def made(engine: Engine) -> Iterator[list[str]]:
    """Refs this test made (its own tags on the test project's repository), removed at the end."""
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        engine.remove_image(ref)


def build(engine: Engine, stack: Path, monkeypatch: pytest.MonkeyPatch, assemble: bool) -> tuple[str, str]:
    monkeypatch.setenv("ENVCTL_ASSEMBLE", "1" if assemble else "0")
    topology = load_topology(stack / "envctl.yaml", environ={})
    image = ImageBuilder(topology, engine).ensure(["codeonly"])["service:codeonly"]
    assert image.built, "the test's image existed already"
    log = (stack / ".envctl" / "builds" / "codeonly.log").read_text()
    assert ("envctl: assembled" in log) == assemble, log
    return image.ref, image.id


def keep_as(engine: Engine, ref: str, tag: str, made: list[str]) -> str:
    """Tag the image at `ref` as `tag` and untag `ref`, so the next build makes it again."""
    repository = ref.rsplit(":", 1)[0]
    engine.tag(ref, repository, tag)
    made.append(f"{repository}:{tag}")
    engine.remove_image(ref)
    return f"{repository}:{tag}"


def files(engine: Engine, image: str, paths: tuple[str, ...] = COMPARED_PATHS) -> dict[str, tuple]:
    """{path: (type, mode, uid, gid, sha256 or link)} under `paths` in `image`."""
    container = engine.api.create_container(image, command=["true"])["Id"]
    try:
        entries = {}
        for path in paths:
            stream, _ = engine.api.get_archive(container, path)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                for member in tar:
                    data = tar.extractfile(member) if member.isfile() else None
                    what = hashlib.sha256(data.read()).hexdigest() if data else member.linkname
                    entries[f"{path}:{member.name}"] = (member.type, oct(member.mode), member.uid, member.gid, what)
        return entries
    finally:
        engine.api.remove_container(container, force=True)


def config(engine: Engine, image: str) -> dict:
    found = engine.inspect_image(image)["Config"]
    return {key: found.get(key) for key in CONFIG_KEYS}


def settings(engine: Engine, image: str) -> dict:
    """What the builder's image and the assembled one must share: the whole Config but its Image, and the
    image's Author, Os, Architecture, Variant and OsVersion. Config.Image names the image the last step
    ran on: the builder's own image of the step before its LABEL step, where the assembled image names
    the base or prefix it was written on (no such step image exists for it). The rest of what inspect
    shows differs by how each was made: Id, Created and History (the builder dates each step as it runs
    it), Container, ContainerConfig and DockerVersion (the builder commits through a container), RootFS
    and GraphDriver (the builder's layer tars are its own bytes; the files are compared with `files`)."""
    found = engine.inspect_image(image)
    return {"Config": {k: v for k, v in found["Config"].items() if k != "Image"},
            **{key: found.get(key) for key in ("Author", "Os", "Architecture", "Variant", "OsVersion")}}


def test_assembled_image_equals_the_builders(engine: Engine, codeonly_stack: Path, made: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ref, built_id = build(engine, codeonly_stack, monkeypatch, assemble=False)
    made.append(ref)
    built = keep_as(engine, ref, "by-builder", made)
    again, assembled_id = build(engine, codeonly_stack, monkeypatch, assemble=True)
    assert again == ref  # one content hash, whichever way the image was made
    assert assembled_id != built_id
    by_builder, assembled = files(engine, built), files(engine, ref)
    assert "/ctx:ctx/secret.txt" not in assembled and "/srv:srv/app/lib/inner/deep.py" in assembled
    assert "/etc:etc/app.d/app.conf" in assembled
    assert assembled == by_builder
    assert settings(engine, ref) == settings(engine, built)
    assert config(engine, ref)["Labels"]["envctl.input-hash"] == ref.rsplit(":", 1)[1]

    first = keep_as(engine, ref, "assembled-first", made)
    _, second_id = build(engine, codeonly_stack, monkeypatch, assemble=True)
    assert second_id == engine.image_id(first)  # same inputs, same image id


TAIL_DOCKERFILE = """\
# A RUN, then only what the assembler writes: the builder makes the part up to the RUN.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG RELEASE=one
ENV BEFORE=yes
RUN mkdir -p /opt/made/conf && echo "{token} $RELEASE" > /opt/made/stamp && chmod 0750 /opt/made/conf
ENV RELEASE=$RELEASE AFTER=$BEFORE
COPY app.py /opt/made/
COPY conf /opt/made/conf/
WORKDIR /srv/app
COPY lib ./lib/
USER 1000:1000
EXPOSE 8000
ENTRYPOINT ["python3"]
CMD ["/opt/made/app.py"]
"""


@pytest.fixture
def tail_stack(stack_dir: Path) -> Path:
    """Two services: one whose Dockerfile has a code-only tail after its RUN, one ending in its RUN."""
    token = os.urandom(6).hex()  # a RUN no earlier test left in the builder's cache
    for name, text in (("tail", TAIL_DOCKERFILE.replace("{token}", token)),
                       ("endsinrun", f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {token} > /stamp")):
        context = stack_dir / name
        (context / "lib").mkdir(parents=True)
        (context / "conf").mkdir()
        (context / "Dockerfile").write_text(text)
        (context / "app.py").write_text("print('tail')\n")
        (context / "lib" / "__init__.py").write_text("")
        (context / "conf" / "app.conf").write_text("level = info\n")
    add_services(stack_dir, "  tail:\n    build: {context: tail, args: {RELEASE: two}}\n    base: os\n"
                            "  endsinrun:\n    build: {context: endsinrun}\n    base: os\n")
    return stack_dir


def build_service(engine: Engine, stack: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                  assemble: bool) -> tuple[str, str]:
    monkeypatch.setenv("ENVCTL_ASSEMBLE", "1" if assemble else "0")
    topology = load_topology(stack / "envctl.yaml", environ={})
    image = ImageBuilder(topology, engine).ensure([name])[f"service:{name}"]
    assert image.built, "the test's image existed already"
    log = (stack / ".envctl" / "builds" / f"{name}.log").read_text()
    assert ("envctl: assembled" in log) == assemble, log
    return image.ref, image.id


def dangling(engine: Engine) -> set[str]:
    return set(engine.api.images(filters={"dangling": True}, quiet=True))


def test_a_tail_assembled_on_the_builders_prefix_equals_the_builders_image(
        engine: Engine, tail_stack: Path, made: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    before = dangling(engine)
    ref, assembled_id = build_service(engine, tail_stack, monkeypatch, "tail", assemble=True)
    made.append(ref)
    prefix = engine.inspect_image(ref)["Parent"]
    assert prefix and "mkdir -p /opt/made" in engine.image_history(prefix)[-1]["CreatedBy"]  # the RUN step
    assert dangling(engine) == before  # the prefix is the assembled image's parent, not a loose image
    assembled = keep_as(engine, ref, "assembled", made)
    built_ref, _ = build_service(engine, tail_stack, monkeypatch, "tail", assemble=False)
    assert built_ref == ref
    paths = ("/opt/made", "/srv", "/etc/passwd")
    assert "/opt/made:made/stamp" in files(engine, assembled, paths)
    assert files(engine, assembled, paths) == files(engine, ref, paths)
    assert settings(engine, assembled) == settings(engine, ref)
    found = config(engine, assembled)
    assert "RELEASE=two" in found["Env"] and "AFTER=yes" in found["Env"] and found["User"] == "1000:1000"
    assert found["Labels"]["envctl.input-hash"] == ref.rsplit(":", 1)[1]


def test_a_dockerfile_ending_in_run_gets_a_config_only_image_removed_with_its_prefix(
        engine: Engine, tail_stack: Path, made: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    before = dangling(engine)
    ref, image_id = build_service(engine, tail_stack, monkeypatch, "endsinrun", assemble=True)
    image = engine.inspect_image(ref)
    prefix = engine.inspect_image(image["Parent"])
    assert image["RootFS"]["Layers"] == prefix["RootFS"]["Layers"]  # no layer of its own
    assert engine.image_history(ref)[-1]["Size"] == 0
    assert image["Config"]["Labels"]["envctl.input-hash"] == ref.rsplit(":", 1)[1]
    assert {k: v for k, v in image["Config"].items() if k not in ("Labels", "Image")} == \
        {k: v for k, v in prefix["Config"].items() if k not in ("Labels", "Image")}
    assert dangling(engine) == before
    engine.remove_image(ref)
    assert engine.image_id(prefix["Id"]) is None and dangling(engine) == before  # the prefix went with it


WORKDIR_DOCKERFILE = """\
# The common shape: WORKDIR makes a directory (a layer of size 0), the requirements, their install, the code.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
WORKDIR /app
COPY requirements.txt .
RUN mkdir -p /app/site && echo "{token}" > /app/site/installed
COPY . .
"""


def test_workdir_copy_run_copy_is_assembled_on_its_prefix_and_equals_the_builders_image(
        engine: Engine, stack_dir: Path, made: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    context = stack_dir / "workdir"
    (context / "src").mkdir(parents=True)
    (context / "Dockerfile").write_text(WORKDIR_DOCKERFILE.replace("{token}", os.urandom(6).hex()))
    (context / "requirements.txt").write_text("flask==3.0.0\n")
    (context / "src" / "app.py").write_text("print('app')\n")
    add_services(stack_dir, "  workdir:\n    build: {context: workdir}\n    base: os\n")
    ref, _ = build_service(engine, stack_dir, monkeypatch, "workdir", assemble=True)  # not the builder's fallback
    made.append(ref)
    prefix = engine.inspect_image(ref)["Parent"]
    assert prefix and "/app/site/installed" in engine.image_history(prefix)[-1]["CreatedBy"]
    assert 0 in [step["Size"] for step in engine.image_history(prefix)[-3:]]  # WORKDIR's layer, of size 0
    assembled = keep_as(engine, ref, "assembled", made)
    built_ref, _ = build_service(engine, stack_dir, monkeypatch, "workdir", assemble=False)
    assert built_ref == ref
    assert "/app:app/src/app.py" in files(engine, assembled, ("/app",))
    assert files(engine, assembled, ("/app",)) == files(engine, ref, ("/app",))
    assert settings(engine, assembled) == settings(engine, ref)


ODD_DOCKERFILES = {  # on a base whose config the builder changes: ArgsEscaped, stdin open, an author
    "oddcopy": "FROM {base}\nCOPY app.py /srv/\nCMD [\"python3\", \"/srv/app.py\"]\n",
    "oddtail": "FROM {base}\nMAINTAINER team@example.invalid\nRUN echo {token} > /stamp\nCOPY app.py /srv/\n"
               "ENTRYPOINT python3 /srv/app.py\n",
}


def test_what_the_builder_changes_in_a_bases_config_the_assembler_changes_too(
        engine: Engine, stack_dir: Path, made: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from envctl.images import assemble
    topology = load_topology(stack_dir / "envctl.yaml", environ={})
    os_base = ImageBuilder(topology, engine).ensure(["store"])["base:os"]
    inspected = engine.inspect_image(os_base.ref)
    odd = f"{os_base.ref.rsplit(':', 1)[0]}:odd-{os.urandom(4).hex()}"
    changed = {"ArgsEscaped": True, "OpenStdin": True, "StdinOnce": True}
    history = assemble._history(engine, inspected, None)
    loaded = assemble.image_config(inspected, changed, {}, None, 1_700_000_000, history, "test", "test: odd base",
                                   author="base-author")
    engine.load_image(loaded, odd, [None] * len(inspected["RootFS"]["Layers"]))
    made.append(odd)
    assert engine.inspect_image(odd)["Config"]["ArgsEscaped"] is True
    token = os.urandom(6).hex()
    for name, text in ODD_DOCKERFILES.items():
        context = stack_dir / name
        context.mkdir()
        (context / "Dockerfile").write_text(text.format(base=odd, token=token))
        (context / "app.py").write_text("print('odd')\n")
        add_services(stack_dir, f"  {name}:\n    build: {{context: {name}}}\n")
    for name in ODD_DOCKERFILES:
        ref, _ = build_service(engine, stack_dir, monkeypatch, name, assemble=True)
        made.append(ref)
        assembled = keep_as(engine, ref, "assembled", made)
        build_service(engine, stack_dir, monkeypatch, name, assemble=False)
        made.append(ref)
        assert settings(engine, assembled) == settings(engine, ref), name
        found = settings(engine, assembled)
        assert "ArgsEscaped" not in found["Config"] and found["Config"]["OpenStdin"] is False
        assert found["Author"] == ("team@example.invalid" if name == "oddtail" else "")
