"""Where a Dockerfile is cut for the builder, what is refused before anything is built, and the prefix
the builder made for a tail the assembler then left to it."""
import io
from pathlib import Path

import pytest

from envctl.errors import BuildFailed, EnvctlError
from envctl.images import assemble, codeonly
from envctl.images.buildcontext import BuildContext
from envctl.images.codeonly import CodeOnly, NotCodeOnly, Parsed, Split

BASE = {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/bash"]}


def cut(text: str) -> Split:
    result = codeonly.split(text)
    assert isinstance(result, Split), result
    return result


# -- B1: lines end at "\n" alone, as the builder and dockerfile_parse count them ---------------------

@pytest.mark.parametrize("odd", ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"])
def test_the_prefix_is_cut_at_newlines_only(odd: str) -> None:
    text = f"FROM a\nRUN echo a{odd}b\nRUN true\nCOPY x /x\n"
    assert cut(text).prefix == "FROM a\nRUN echo a" + odd + "b\nRUN true\n"  # the last RUN stays the builder's


def test_a_crlf_dockerfile_keeps_its_line_ends_in_the_prefix() -> None:
    text = "FROM a\r\nRUN make \\\r\n  all\r\nCOPY x /x/\r\n"
    split = cut(text)
    assert split.prefix == "FROM a\r\nRUN make \\\r\n  all\r\n"
    assert split.tail.instructions == (("COPY", "x /x/"),)
    assert cut("FROM a\r\nRUN make").prefix == "FROM a\r\nRUN make\n"


# -- B2: continued lines the builder reads otherwise than dockerfile_parse ----------------------------

@pytest.mark.parametrize("text, reason", [
    ("FROM a\nCOPY x /x\nRUN make \\", "end of the file"),  # dockerfile_parse drops the RUN
    ("FROM a\nCOPY x /x\nRUN make \\\n", "end of the file"),
    ("FROM a\nENV A=1 \\\n\nCOPY x /x\n", "blank line"),  # the builder: ENV A=1 COPY x /x
    ("FROM a\nENV A=1 \\\n   \nCOPY x /x\n", "blank line"),
    ("FROM a\nENV A=1 \\\n# a note\n  B=2\nCOPY x /x\n", "comment"),
    ("FROM a\nENV A=1 \\\x0c\nCOPY x /x\n", "whitespace"),  # the builder: no continuation
])
def test_a_continuation_the_builder_reads_otherwise_is_refused(text: str, reason: str) -> None:
    for result in (codeonly.parse(text), codeonly.split(text), codeonly.split(text.replace("COPY x /x\n", "RUN b\n"))):
        assert isinstance(result, NotCodeOnly) and reason in result.reason, result


def test_plain_continuations_and_comments_between_instructions_are_fine() -> None:
    text = "FROM a\n# about\nCOPY a \\\n  b /x/\n\n# more\nENV A=1 \\\t\n    B=2\n"
    assert isinstance(codeonly.parse(text), Parsed)
    assert isinstance(codeonly.parse(text.replace("\n", "\r\n")), Parsed)
    assert cut("FROM a\nRUN make \\\n  all\nCOPY x /x\n").tail.instructions == (("COPY", "x /x"),)


# -- B3: a pattern at the context's top, however it is written -----------------------------------------

@pytest.mark.parametrize("value", ["./* /app/", ".//* /app/", "/* /app/", "//* /app/", "src/../* /app/",
                                   "*/. /app/", "./.* /app/", "./?ockerfile /app/", '["./*", "/app/"]',
                                   "--chown=1 ./* /app/", ". /app/", "./ /app/", "src/.. /app/"])
def test_a_copy_that_may_take_the_generated_dockerfile(value: str) -> None:
    assert codeonly._may_copy_the_root(value)


@pytest.mark.parametrize("value", ["src/*.py /app/", "./src/* /app/", "app.py /app/", "./src /app/", "lib/ /app/"])
def test_a_copy_that_cannot(value: str) -> None:
    assert not codeonly._may_copy_the_root(value)


def test_a_dot_slash_star_before_the_run_is_not_split() -> None:
    result = codeonly.split("FROM a\nCOPY ./* /src/\nRUN make\nCOPY x /x\n")
    assert isinstance(result, NotCodeOnly) and "context's top" in result.reason


# -- B5: what no base or argument changes is refused before the prefix is built --------------------

@pytest.mark.parametrize("tail, reason", [
    ("COPY --chown=1000 x /x\n", "flags"),
    ("COPY --chown=$OWNER x /x\n", "flags"),
    ("ADD http://127.0.0.1/x /x\n", "URL"),
    ("COPY *.py /app/\n", "wildcard"),
    ("COPY src/[ab].py /app/\n", "wildcard"),
    ("COPY a b /app\n", "trailing '/'"),
    ("COPY \"a b\" /x\n", "quotes"),
    ("COPY \"$A\" /x\n", "quotes"),
    ("EXPOSE 8000-8010\n", "range"),
    ("ENV A\n", "not understood"),
])
def test_a_tail_refused_whatever_the_base_is_refused_before_the_builder_runs(tail: str, reason: str) -> None:
    result = codeonly.split("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN make\n" + tail)
    assert isinstance(result, NotCodeOnly) and reason in result.reason, result
    parsed = codeonly.parse("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n" + tail)
    assert isinstance(parsed, NotCodeOnly) and reason in parsed.reason, parsed


def test_what_depends_on_the_arguments_or_the_base_is_decided_later() -> None:
    split = cut("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN make\nARG SOURCES=x\nCOPY $SOURCES /x/\nCMD run\n")
    assert isinstance(codeonly.decide(split.tail, {"BASE_IMAGE": "b"}, BASE), CodeOnly)
    decided = codeonly.decide(split.tail, {"BASE_IMAGE": "b", "SOURCES": "*.py"}, BASE)
    assert isinstance(decided, NotCodeOnly) and "wildcard" in decided.reason
    decided = codeonly.decide(split.tail, {"BASE_IMAGE": "b"}, {**BASE, "Shell": ["/bin/bash", "-c"]})
    assert isinstance(decided, NotCodeOnly) and "SHELL" in decided.reason
    assert isinstance(cut('FROM a\nSHELL ["/bin/bash", "-c"]\nRUN make\nCMD ["run"]\n'), Split)


# -- ONBUILD triggers on the base ------------------------------------------------------------------

def test_a_base_with_onbuild_triggers_needs_the_builder() -> None:
    triggers = {**BASE, "OnBuild": ["RUN make"]}
    result = codeonly.classify("FROM a\nCOPY x /x\n", {}, triggers)
    assert isinstance(result, NotCodeOnly) and "ONBUILD" in result.reason
    assert isinstance(codeonly.classify("FROM a\nCOPY x /x\n", {}, {**BASE, "OnBuild": None}), CodeOnly)


# -- the builder's prefix, when the assembler leaves the tail to the builder ------------------------------

class Engine:
    def __init__(self, refuse: EnvctlError | None = None) -> None:
        self.calls: list[str] = []
        self.refuse = refuse

    def inspect_image(self, ref: str) -> dict:
        return {"Id": ref, "RepoTags": []}  # untagged: the prefix may go

    def remove_image(self, ref: str) -> None:
        self.calls.append(f"remove {ref}")
        if self.refuse:
            raise self.refuse


PREFIX = "sha256:" + "p" * 64


@pytest.fixture
def builder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """An ImageBuilder on the reference stack whose builder steps are recorded: `run(dockerfile)` assembles
    (the assembler refusing the tail) and returns the image id, the log and the engine's calls."""
    from envctl.images.builder import ImageBuilder, image_targets
    from envctl.topology.loader import load_topology
    monkeypatch.delenv("ENVCTL_ASSEMBLE", raising=False)
    topology = load_topology(Path(__file__).parents[2] / "envctl.yaml")
    target = next(t for t in image_targets(topology).values() if t.kind == "service"
                  and topology.services[t.name].base == "python")

    def run(dockerfile: str, engine: Engine, fail: Exception | None = None) -> tuple[str | None, str]:
        made = ImageBuilder(topology, engine=engine)  # type: ignore[arg-type]
        made.__dict__["platform"] = "linux/amd64"
        monkeypatch.setattr(made, "_prefix", lambda *a: engine.calls.append("prefix") or PREFIX)

        def whole(*args):
            engine.calls.append("build")
            if fail:
                raise fail
            return "sha256:whole"
        monkeypatch.setattr(made, "_by_builder", whole)
        (tmp_path / "Dockerfile").write_text(dockerfile)
        log = io.StringIO()
        image_id = made._assembled(target, BuildContext(tmp_path), {"BASE_IMAGE": "b"}, "shop/x:1", log, "x")
        return image_id, log.getvalue()
    return run


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise assemble.NotAssembled("x is a symbolic link")
    monkeypatch.setattr(assemble, "assemble", refuse)


def test_a_prefix_the_assembler_did_not_use_is_removed_after_the_builders_build(builder, refused) -> None:
    engine = Engine()
    image_id, log = builder("FROM a\nRUN make\nCOPY x /x\n", engine)
    assert image_id == "sha256:whole"  # the builder's image of the whole Dockerfile
    assert engine.calls == ["prefix", "build", f"remove {PREFIX}"]  # after: the build reuses the prefix's steps
    assert "x is a symbolic link" in log


def test_a_prefix_the_builders_image_took_as_its_parent_stays(builder, refused) -> None:
    engine = Engine(EnvctlError("the Docker engine refused a request: 409 Conflict: image has dependent child images"))
    image_id, log = builder("FROM a\nRUN make\nCOPY x /x\n", engine)
    assert image_id == "sha256:whole" and engine.calls[-1] == f"remove {PREFIX}"
    assert "stays" in log and "409" in log


def test_a_prefix_is_removed_when_the_builders_build_fails_too(builder, refused) -> None:
    engine = Engine()
    with pytest.raises(BuildFailed):
        builder("FROM a\nRUN make\nCOPY x /x\n", engine, fail=BuildFailed("building x failed"))
    assert engine.calls == ["prefix", "build", f"remove {PREFIX}"]


def test_a_tail_refused_whatever_the_base_builds_no_prefix(builder, refused) -> None:
    engine = Engine()
    assert builder("FROM a\nRUN make\nCOPY --chown=1 x /x\n", engine)[0] is None  # the builder's job, as before
    assert engine.calls == []


def test_the_builder_reads_a_dockerfile_with_its_own_line_ends(tmp_path: Path) -> None:
    from envctl.images.builder import ImageBuilder
    from envctl.topology.loader import load_topology
    builder = ImageBuilder(load_topology(Path(__file__).parents[2] / "envctl.yaml"), engine=None)  # type: ignore[arg-type]
    (tmp_path / "Dockerfile").write_bytes(b"FROM a\r\nRUN echo a\rCOPY x /x\r\n")  # one RUN, for the builder
    text, parsed = builder._dockerfile(tmp_path / "Dockerfile")
    assert text == "FROM a\r\nRUN echo a\rCOPY x /x\r\n" and parsed == NotCodeOnly("RUN needs the builder")
    assert cut(text).prefix == text and cut(text).tail.instructions == ()
