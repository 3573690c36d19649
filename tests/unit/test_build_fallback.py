"""What the builder is sent, and what becomes of the builder's prefix, when envctl's assembly does not happen:
a Dockerfile that is not UTF-8 goes to the builder as it is, every failure after the prefix falls back to the
builder, and the prefix goes only when it is untagged."""
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from envctl.errors import Cancelled, EnvctlError
from envctl.images import assemble, layout, secretbuild
from envctl.images.buildcontext import BuildContext

PREFIX = "sha256:" + "p" * 64
NOT_UTF8 = b"FROM a\nRUN printf 'caf\xe9' > /x\nCOPY x /x\n"


class Engine:
    """The engine calls a prefix's removal makes; `tags`: the prefix's tags."""

    def __init__(self, tags: list[str] | None = None, refuse: EnvctlError | None = None) -> None:
        self.calls: list[str] = []
        self.tags = tags or []
        self.refuse = refuse

    def inspect_image(self, ref: str) -> dict:
        return {"Id": ref, "RepoTags": self.tags}

    def remove_image(self, ref: str) -> None:
        self.calls.append(f"remove {ref}")
        if self.refuse:
            raise self.refuse


@pytest.fixture
def builder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """`run(dockerfile bytes, engine)`: `_assembled` on the reference stack with the builder's steps recorded;
    returns the image id (None: the builder's job) and the log."""
    from envctl.images.builder import ImageBuilder, image_targets
    from envctl.topology.loader import load_topology
    monkeypatch.delenv("ENVCTL_ASSEMBLE", raising=False)
    topology = load_topology(Path(__file__).parents[2] / "envctl.yaml")
    target = next(t for t in image_targets(topology).values() if t.kind == "service"
                  and topology.services[t.name].base == "python")

    def run(dockerfile: bytes, engine: Engine) -> tuple[str | None, str]:
        made = ImageBuilder(topology, engine=engine)  # type: ignore[arg-type]
        made.__dict__["platform"] = "linux/amd64"
        monkeypatch.setattr(made, "_prefix", lambda *a: engine.calls.append("prefix") or PREFIX)
        monkeypatch.setattr(made, "_by_builder", lambda *a: engine.calls.append("build") or "sha256:whole")
        (tmp_path / "Dockerfile").write_bytes(dockerfile)
        log = io.StringIO()
        image_id = made._assembled(target, BuildContext(tmp_path), {"BASE_IMAGE": "b"}, "shop/x:1", log, "x")
        return image_id, log.getvalue()
    return run


# -- a Dockerfile that is not UTF-8 ---------------------------------------------------------------

def test_a_dockerfile_that_is_not_utf8_is_neither_split_nor_assembled(builder) -> None:
    engine = Engine()
    image_id, log = builder(NOT_UTF8, engine)
    assert image_id is None and engine.calls == []  # no prefix: the builder gets the whole file
    assert "not UTF-8" in log


def test_the_builder_gets_the_dockerfiles_own_bytes(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_bytes(NOT_UTF8)
    context = BuildContext(tmp_path)
    assert context.generated_dockerfile(('LABEL "a"="b"',)) == NOT_UTF8 + b'LABEL "a"="b"\n'
    text = NOT_UTF8.decode(errors="surrogateescape")  # as the builder reads it
    assert context.generated_dockerfile(dockerfile_text=text) == NOT_UTF8  # a part of it, written back


def test_a_secret_builds_parts_keep_the_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    text = b"FROM a\nRUN printf 'caf\xe9' > /x\nRUN --mount=type=secret,id=t make\nENV A=caf\xe9\n"
    plan = secretbuild.plan(text.decode(errors="surrogateescape"), tmp_path / "Dockerfile")
    [(_, after)] = plan.parts
    assert "\n".join(plan.head).encode(errors="surrogateescape") == b"FROM a\nRUN printf 'caf\xe9' > /x"
    assert "\n".join(after).encode(errors="surrogateescape") == b"ENV A=caf\xe9"


@pytest.mark.parametrize("text", [b"FROM a\nRUN --mount=type=secret,id=t printf 'caf\xe9'\n",
                                  b"FROM a\nARG A=caf\xe9\nRUN --mount=type=secret,id=t make\n"])
def test_a_secret_step_cannot_be_sent_bytes_that_are_not_utf8(text: bytes, tmp_path: Path) -> None:
    with pytest.raises(EnvctlError, match="not UTF-8") as raised:
        secretbuild.plan(text.decode(errors="surrogateescape"), tmp_path / "Dockerfile")
    assert f"{tmp_path / 'Dockerfile'}:2:" in str(raised.value) and raised.value.fix


# -- every failure after the prefix falls back to the builder -------------------------------------

SPLIT = b"FROM a\nRUN make\nCOPY x /x\n"


def fail(error: BaseException):
    def raising(*args, **kwargs):
        raise error
    return raising


@pytest.mark.parametrize("where, error", [
    ("_local_base", EnvctlError("the Docker engine refused a request: 404 No such image")),
    ("exact_config", EnvctlError("the Docker engine refused a request: 500")),
    ("_load_on", FileNotFoundError(2, "No such file or directory", "/ctx/x")),
])
def test_any_failure_after_the_prefix_falls_back_to_the_builder_and_removes_the_prefix(
        builder, monkeypatch: pytest.MonkeyPatch, where: str, error: BaseException) -> None:
    monkeypatch.setattr(assemble, where, fail(error))
    if where != "_local_base":  # get as far as `where`
        monkeypatch.setattr(assemble, "_local_base", lambda *a: {"Id": PREFIX, "Config": {}})
        monkeypatch.setattr(assemble, "exact_config", fail(error) if where == "exact_config" else lambda *a: b"{}")
        monkeypatch.setattr(assemble, "Layout", lambda *a: type("L", (), {"entries": lambda self, steps: {}})())
        monkeypatch.setattr(assemble, "_newest", lambda *a: 0)
    engine = Engine()
    engine.path_kinds = lambda image: _Kinds()  # type: ignore[attr-defined]
    image_id, log = builder(SPLIT, engine)
    assert image_id == "sha256:whole" and engine.calls == ["prefix", "build", f"remove {PREFIX}"]
    assert "not assembled" in log


def test_a_failure_without_a_prefix_leaves_the_image_to_the_builder(builder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assemble, "_local_base", fail(EnvctlError("the Docker engine refused a request: 500")))
    engine = Engine()
    assert builder(b"FROM a\nCOPY x /x\n", engine)[0] is None and engine.calls == []


def test_a_cancelled_assembly_removes_the_prefix_and_stays_cancelled(builder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assemble, "_local_base", fail(Cancelled("stopped")))
    engine = Engine()
    with pytest.raises(Cancelled):
        builder(SPLIT, engine)
    assert engine.calls == ["prefix", f"remove {PREFIX}"]  # no build after a cancel


class _Kinds:
    header = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- the prefix goes only when it has no tag ------------------------------------------------------

@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assemble, "assemble", fail(assemble.NotAssembled("x is a symbolic link")))


def test_a_prefix_that_is_also_a_tagged_image_is_never_removed(builder, refused) -> None:
    # The builder's cache gives a prefix the id of a user's image of the same steps: removing the prefix
    # by id would remove that image (a single tag goes with its image).
    engine = Engine(tags=["mine:1"])
    image_id, log = builder(SPLIT, engine)
    assert image_id == "sha256:whole" and engine.calls == ["prefix", "build"]
    assert "stays: it is also mine:1" in log


def test_an_untagged_prefix_is_removed(builder, refused) -> None:
    engine = Engine(tags=["<none>:<none>"])
    assert builder(SPLIT, engine)[0] == "sha256:whole"
    assert engine.calls == ["prefix", "build", f"remove {PREFIX}"]


# -- a context file read once: its size, mode and date as opened ----------------------------------

def layer_of(path: Path, entry) -> bytes:
    out = io.BytesIO()
    layout.write_layer({"/app/x": entry}, 0, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        member = tar.getmember("app/x")
        return tar.extractfile(member).read()  # type: ignore[union-attr]


def test_a_file_replaced_as_it_is_opened_is_written_whole_as_opened(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"the file as it was opened, long")
    info = path.stat()
    entry = layout.Entry("file", stat.S_IMODE(info.st_mode), int(info.st_mtime), path)

    def open_then_replace(name, mode="r"):
        opened = open(name, mode)
        (tmp_path / "new").write_bytes(b"short")
        os.replace(tmp_path / "new", name)  # an editor saving: a new file at the path
        return opened
    monkeypatch.setattr(layout, "open", open_then_replace, raising=False)
    assert layer_of(path, entry) == b"the file as it was opened, long"


def test_a_file_whose_mode_or_date_changed_since_the_layout_is_left_to_the_builder(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"data")
    info = path.stat()
    entry = layout.Entry("file", stat.S_IMODE(info.st_mode), int(info.st_mtime), path)
    os.utime(path, (info.st_atime, info.st_mtime + 10))
    with pytest.raises(layout.NotAssembled, match="changed while the image was assembled"):
        layer_of(path, entry)


# -- the hash's version -----------------------------------------------------------------------------

def test_a_new_hash_version_gives_every_image_a_new_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    from envctl.images import builder
    monkeypatch.setattr(builder, "HASH_VERSION", "2")
    before = builder._hash({"x": 1})
    assert builder._hash({"x": 1}) == before  # the same inputs, the same hash
    monkeypatch.setattr(builder, "HASH_VERSION", "3")
    assert builder._hash({"x": 1}) != before
