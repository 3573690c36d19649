"""Which Dockerfiles are code-only, the config the builder would end with, and where assembled files land."""
import io
import os
import tarfile
from pathlib import Path

import pytest

from envctl.images import assemble
from envctl.images.buildcontext import BuildContext
from envctl.images import codeonly
from envctl.images.codeonly import CodeOnly, Copy, NotCodeOnly, Parsed, Workdir, classify

BASE = {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["/bin/bash"], "Labels": {"from": "base"}}


def code_only(text: str, args: dict[str, str] | None = None, base: dict | None = None) -> CodeOnly:
    result = classify(text, {"BASE_IMAGE": "shop/base-python:1", **(args or {})}, BASE if base is None else base)
    assert isinstance(result, CodeOnly), result
    return result


def test_the_reference_stack_app_dockerfile_is_code_only() -> None:
    result = code_only("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY app.py /app/app.py\n")
    assert result.base == "shop/base-python:1"
    assert result.steps == (Copy(("app.py",), "/app/app.py"),)
    assert result.config["Env"] == BASE["Env"] and result.config["Cmd"] == ["/bin/bash"]


@pytest.mark.parametrize("text, reason", [
    ("FROM a\nRUN true\n", "RUN"),
    ("FROM a AS one\nFROM a\nCOPY --from=one /x /x\n", "several stages"),
    ("FROM a\nCOPY --chown=1000 x /x\n", "flags"),
    ("FROM a\nCOPY --from=other /x /x\n", "flags"),
    ("FROM a\nADD https://example.invalid/x /x\n", "URL"),
    ("FROM a\nCOPY *.py /app/\n", "wildcard"),
    ("FROM a\nCOPY a b /app\n", "trailing '/'"),
    ("FROM a\nSHELL [\"/bin/bash\", \"-c\"]\n", "SHELL"),
    ("FROM a\nHEALTHCHECK CMD true\n", "HEALTHCHECK"),
    ("FROM a\nONBUILD RUN true\n", "ONBUILD"),
    ("FROM a\nVOLUME /data\n", "VOLUME"),
    ("FROM a\nEXPOSE 8000-8010\n", "range"),
    ("FROM scratch\nCOPY x /x\n", "scratch"),
    ("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n", "FROM"),
    ("# escape=`\nFROM a\n", "directive"),
    ("FROM a\nCOPY \"a b\" /x\n", "quotes"),
])
def test_what_needs_the_builder(text: str, reason: str) -> None:
    result = classify(text, {}, BASE)
    assert isinstance(result, NotCodeOnly) and reason in result.reason


def test_metadata_as_the_builder_sets_it() -> None:
    result = code_only(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG VERSION=1\nENV PATH=/opt/venv/bin:$PATH APP_VERSION=$VERSION\n"
        "ENV LANG C\nWORKDIR /srv\nWORKDIR app\nUSER 1000:1000\nEXPOSE 8000 53/udp\n"
        "LABEL a=b \"c d\"=\"e f\"\nSTOPSIGNAL SIGINT\nENTRYPOINT [\"python3\"]\nCMD app.py\n", {"VERSION": "7"})
    config = result.config
    assert config["Env"] == ["PATH=/opt/venv/bin:/usr/bin:/bin", "LANG=C", "APP_VERSION=7"]
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "1000:1000"
    assert config["ExposedPorts"] == {"8000/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"from": "base", "a": "b", "c d": "e f"}
    assert config["StopSignal"] == "SIGINT"
    assert config["Entrypoint"] == ["python3"] and config["Cmd"] == ["/bin/sh", "-c", "app.py"]
    assert result.steps == (Workdir("/srv"), Workdir("/srv/app"))


def test_entrypoint_drops_the_base_cmd_unless_the_file_sets_one() -> None:
    assert code_only("FROM a\nENTRYPOINT [\"x\"]\n").config["Cmd"] is None
    assert code_only("FROM a\nCMD [\"y\"]\nENTRYPOINT [\"x\"]\n").config["Cmd"] == ["y"]


def test_copy_destinations_follow_workdir_and_arguments() -> None:
    result = code_only("FROM a\nARG DEST=lib\nWORKDIR /app\nCOPY ./src/../pkg $DEST/\nCOPY app.py .\nCOPY run.sh bin/run\n")
    assert result.steps[1:] == (Copy(("pkg",), "/app/lib/"), Copy(("app.py",), "/app/"), Copy(("run.sh",), "/app/bin/run"))


def test_undeclared_build_arguments_are_not_substituted() -> None:
    result = code_only("FROM a\nCOPY app.py /$DEST/\n", {"DEST": "srv"})
    assert result.steps == (Copy(("app.py",), "/"),)


def test_parsing_refuses_what_no_argument_or_base_could_make_code_only_and_decides_nothing_else() -> None:
    assert codeonly.parse("FROM a\nRUN true\n") == NotCodeOnly("RUN needs the builder")
    parsed = codeonly.parse("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG SOURCES=app.py\nCOPY $SOURCES /app/\n")
    assert isinstance(parsed, Parsed)  # the scheduler's guess: light
    assert codeonly.base_of(parsed, {"BASE_IMAGE": "shop/base:1"}) == "shop/base:1"
    assert isinstance(codeonly.base_of(parsed, {}), NotCodeOnly)  # BASE_IMAGE unset
    decided = codeonly.decide(parsed, {"BASE_IMAGE": "shop/base:1", "SOURCES": "*.py"}, BASE)
    assert isinstance(decided, NotCodeOnly) and "wildcard" in decided.reason  # the assembler's: the builder's job


# -- the layer's layout, against a made-up base --------------------------------------------------

@pytest.fixture
def context(tmp_path: Path) -> BuildContext:
    (tmp_path / "Dockerfile").write_text("FROM a\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "pkg").mkdir(mode=0o750)
    (tmp_path / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "pkg" / "run.sh", 0o755)
    (tmp_path / "secret.txt").write_text("no\n")
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    return BuildContext(tmp_path)


def layout(context: BuildContext, text: str, base: dict[str, str]) -> dict[str, assemble.Entry]:
    plan = classify(text, {}, {})
    assert isinstance(plan, CodeOnly), plan
    return assemble.Layout(context, base.get, b"generated").entries(plan.steps)


def test_files_land_where_the_builder_puts_them(context: BuildContext) -> None:
    # A copied directory's root is not copied: the destination is created 0755 (its subdirectories keep their modes).
    out = layout(context, "FROM a\nWORKDIR /app\nCOPY app.py pkg/ ./\nCOPY pkg /opt/tools\n", {"/opt": "dir"})
    assert {p: (e.kind, oct(e.mode)) for p, e in out.items()} == {
        "/app": ("dir", "0o755"), "/app/app.py": ("file", "0o644"), "/app/run.sh": ("file", "0o755"),
        "/opt/tools": ("dir", "0o755"), "/opt/tools/run.sh": ("file", "0o755")}


def test_a_file_onto_an_existing_directory_goes_inside(context: BuildContext) -> None:
    out = layout(context, "FROM a\nCOPY app.py /srv\n", {"/srv": "dir"})
    assert list(out) == ["/srv/app.py"]


def test_an_existing_directory_keeps_its_mode_and_owner_but_subdirectories_are_copied(context: BuildContext) -> None:
    (context.root / "etc" / "app").mkdir(parents=True, mode=0o700)
    context.__dict__.pop("files", None)
    out = layout(context, "FROM a\nCOPY etc /etc/\n", {"/etc": "dir", "/etc/app": "dir"})
    assert {p: oct(e.mode) for p, e in out.items()} == {"/etc/app": "0o700"}


@pytest.mark.parametrize("text, base, reason", [
    ("FROM a\nCOPY app.py /lib/app.py\n", {"/lib": "link"}, "symbolic link"),
    ("FROM a\nCOPY secret.txt /x\n", {}, ".dockerignore"),
    ("FROM a\nCOPY app.py /etc/passwd/x\n", {"/etc": "dir", "/etc/passwd": "file"}, "is a file"),
])
def test_what_assembling_leaves_to_the_builder(context: BuildContext, text: str, base: dict, reason: str) -> None:
    with pytest.raises(assemble.NotAssembled, match=reason):
        layout(context, text, base)


def test_copying_the_whole_context_takes_the_generated_dockerfile_too(context: BuildContext) -> None:
    out = layout(context, "FROM a\nCOPY . /app/\n", {})
    assert out["/app/.envctl.Dockerfile"].source == b"generated"
    assert "/app/secret.txt" not in out and "/app/pkg/run.sh" in out


def test_the_layer_is_the_same_bytes_for_the_same_inputs(context: BuildContext) -> None:
    out = layout(context, "FROM a\nCOPY . /app/\n", {})
    first, second = io.BytesIO(), io.BytesIO()
    assert assemble.write_layer(out, 1_700_000_000, first) == assemble.write_layer(out, 1_700_000_000, second)
    members = tarfile.open(fileobj=io.BytesIO(first.getvalue())).getmembers()
    assert [m.name for m in members][:2] == ["app", "app/.dockerignore"]
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}


def test_the_image_config_is_the_bases_with_the_changes_and_envctls_labels_last() -> None:
    base = {"Id": "sha256:b", "Architecture": "amd64", "Os": "linux", "RootFS": {"Layers": ["sha256:1"]},
            "Config": {"Env": ["A=1"], "Cmd": ["bash"], "Labels": {"envctl.kind": "base", "keep": "me"}, "Tty": False}}
    plan = code_only("FROM a\nLABEL envctl.kind=mine team=x\nENTRYPOINT [\"python3\"]\n", base=base["Config"])
    history = [{"Created": -62135596800, "CreatedBy": "import", "Size": 10}, {"Created": 5, "CreatedBy": "ENV", "Size": 0}]
    config = assemble.image_config(base, plan.config, {"envctl.kind": "service"}, "sha256:2", 1_700_000_000,
                                   assemble.repeated_history(history, [True, False]), "Dockerfile")
    assert config["rootfs"]["diff_ids"] == ["sha256:1", "sha256:2"]
    assert config["config"]["Labels"] == {"envctl.kind": "service", "keep": "me", "team": "x"}
    assert "Cmd" not in config["config"] and config["config"]["Entrypoint"] == ["python3"]
    assert config["config"]["Tty"] is False and config["created"] == "2023-11-14T22:13:20Z"
    assert [bool(h.get("empty_layer")) for h in config["history"]] == [False, True, False]
    assert "created" not in config["history"][0]  # the engine refuses Go's zero time written as year 1


def test_the_reference_stacks_app_images_are_the_light_ones_that_need_no_build_place(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from envctl.images.builder import ImageBuilder, image_targets
    from envctl.topology.loader import load_topology
    monkeypatch.delenv("ENVCTL_ASSEMBLE", raising=False)
    topology = load_topology(Path(__file__).parents[2] / "envctl.yaml")
    builder = ImageBuilder(topology, engine=None)  # type: ignore[arg-type]
    light = {k for k, t in image_targets(topology).items() if builder._code_only(t)}
    assert light == {f"service:{name}" for name, s in topology.services.items() if s.base == "python"}
    monkeypatch.setenv("ENVCTL_ASSEMBLE", "0")  # everything through the builder: every build takes a place
    assert not any(builder._code_only(t) for t in image_targets(topology).values())


class NoBase:
    """An engine without the base: the assembler gives up after deciding the base, before any layer."""

    def image_id(self, ref):
        return None


def test_each_dockerfile_is_read_and_parsed_once_for_the_scheduler_the_secret_check_and_the_assembler(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from envctl.images.builder import ImageBuilder, image_targets
    from envctl.topology.loader import load_topology
    monkeypatch.delenv("ENVCTL_ASSEMBLE", raising=False)
    parsed: list[str] = []
    parse = codeonly.parse
    monkeypatch.setattr(codeonly, "parse", lambda text: parsed.append(text) or parse(text))
    topology = load_topology(Path(__file__).parents[2] / "envctl.yaml")
    builder = ImageBuilder(topology, engine=NoBase())  # type: ignore[arg-type]
    builder.__dict__["platform"] = "linux/amd64"
    light = [t for t in image_targets(topology).values() if builder._code_only(t)]
    dockerfiles = {BuildContext(s.build.context, s.build.dockerfile).dockerfile_path
                   for s in topology.services.values() if s.build is not None}
    assert light and len(parsed) == len(dockerfiles)
    log = io.StringIO()
    for target in light:
        service = topology.services[target.name]
        context = BuildContext(service.build.context, service.build.dockerfile)
        builder._dockerfile(context.dockerfile_path)  # the secret steps' check
        assert builder._assembled(target, context, {"BASE_IMAGE": "shop/base-python:1"}, "shop/x:1", log, "x") is None
    assert "the base shop/base-python:1 is not on the engine" in log.getvalue()
    assert len(parsed) == len(dockerfiles)


# -- the code-only tail of a Dockerfile the builder starts ------------------------------------------

def test_the_split_is_after_the_last_step_that_needs_the_builder_and_replays_the_stages_args() -> None:
    text = ("# a comment\nARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG VERSION=1\nRUN echo one \\\n  two\n"
            "# between\nRUN true\nCOPY app.py /app/\nENV APP_VERSION=$VERSION\nCMD [\"python3\"]\n")
    cut = codeonly.split(text)
    assert isinstance(cut, codeonly.Split), cut
    assert cut.prefix == text[:text.index("COPY")]
    assert cut.tail.instructions == (("ARG", "VERSION=1"), ("COPY", "app.py /app/"), ("ENV", "APP_VERSION=$VERSION"),
                                     ("CMD", '["python3"]'))
    plan = codeonly.decide(cut.tail, {"BASE_IMAGE": "b", "VERSION": "7"}, BASE)
    assert isinstance(plan, CodeOnly) and plan.config["Env"][-1] == "APP_VERSION=7"


def test_a_dockerfile_ending_in_run_has_an_empty_tail() -> None:
    cut = codeonly.split("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN apt-get update")
    assert isinstance(cut, codeonly.Split) and cut.prefix.endswith("RUN apt-get update\n")
    plan = codeonly.decide(cut.tail, {"BASE_IMAGE": "b"}, BASE)
    assert isinstance(plan, CodeOnly) and plan.steps == () and plan.config["Env"] == BASE["Env"]


@pytest.mark.parametrize("text, reason", [
    ("FROM a\nCOPY x /x\n", "nothing for the builder"),
    ("FROM a AS one\nRUN true\nFROM a\nCOPY x /x\n", "several stages"),
    ("# syntax=docker/dockerfile:1\nFROM a\nRUN true\nCOPY x /x\n", "directive"),
    ("FROM a\nENV X=1\nARG V=$X\nRUN true\nCOPY x /x\n", "ARG"),
    ("FROM a\nCOPY . /src\nRUN make\nCOPY x /x\n", "COPY of the context's top"),
    ("FROM a\nCOPY * /src/\nRUN make\n", "COPY of the context's top"),
    # refused up front, before the builder makes a prefix: the tail could not go on it whatever the base
    ("FROM --platform=linux/arm64 a\nRUN make\nCOPY x /x\n", "FROM with flags"),
    ("ARG P\nFROM --platform=$P a\nRUN make\nCOPY x /x\n", "FROM with flags"),
    ("FROM scratch\nRUN make\nCOPY x /x\n", "scratch"),
    ("FROM a b\nRUN make\nCOPY x /x\n", "not understood"),
    ('FROM a\nSHELL ["/bin/bash", "-c"]\nRUN make\nCMD run\n', "SHELL"),
    ('FROM a\nSHELL ["/bin/bash", "-c"]\nRUN make\nENTRYPOINT run\n', "SHELL"),
    ("FROM a\nONBUILD RUN x\nRUN make\nCOPY x /x\n", "ONBUILD"),
])
def test_what_cannot_be_split(text: str, reason: str) -> None:
    cut = codeonly.split(text)
    assert isinstance(cut, NotCodeOnly) and reason in cut.reason


def test_a_copy_of_a_subdirectory_before_the_run_is_the_builders_and_comments_are_no_steps() -> None:
    assert isinstance(codeonly.split("FROM a\nCOPY src/ /src/\nRUN make\nCOPY x /x\n"), codeonly.Split)
    assert isinstance(codeonly.parse("# about\nFROM a\n# more\nCOPY x /x\n"), Parsed)


def test_a_shell_form_command_on_a_base_with_its_own_shell_needs_the_builder() -> None:
    result = classify("FROM a\nCMD run\n", {}, {**BASE, "Shell": ["/bin/bash", "-c"]})
    assert isinstance(result, NotCodeOnly) and "SHELL" in result.reason
    assert isinstance(classify("FROM a\nCMD [\"run\"]\n", {}, {**BASE, "Shell": ["/bin/bash", "-c"]}), CodeOnly)


def test_a_config_only_image_adds_no_layer_and_an_empty_layer_step() -> None:
    base = {"Id": "sha256:b", "Architecture": "amd64", "Os": "linux", "RootFS": {"Layers": ["sha256:1"]}, "Config": {}}
    config = assemble.image_config(base, {}, {"envctl.kind": "service"}, None, 1_700_000_000, [], "Dockerfile")
    assert config["rootfs"]["diff_ids"] == ["sha256:1"] and config["history"][-1]["empty_layer"] is True


def test_a_config_is_written_as_gos_encoder_writes_it() -> None:
    assert assemble._go_json({"a": "<&>", "b": [1, None], "c": "é"}) == '{"a":"\\u003c\\u0026\\u003e","b":[1,null],"c":"é"}'.encode()
    assert assemble._go_time(-62135596800) == "0001-01-01T00:00:00Z" and assemble._go_time(0) == "1970-01-01T00:00:00Z"
