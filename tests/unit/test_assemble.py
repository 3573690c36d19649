"""Which history steps made a layer, and the prefix's config rebuilt to the byte (its sha256 is its id)."""
from __future__ import annotations

import hashlib
import json

import pytest

from envctl.images import assemble

BASE_DATE = "2023-11-14T22:13:20Z"
STEPS = [  # (CreatedBy, Size as the engine's history shows it, whether it made a layer)
    ("envctl: bootstrapped root filesystem", 100, True),
    ("/bin/sh -c #(nop)  ENV A=1", 0, False),
    ("/bin/sh -c #(nop) WORKDIR /app", 0, True),  # made /app: a layer of one directory, size 0
    ("/bin/sh -c #(nop) COPY file:abc in . ", 20, True),
    ("/bin/sh -c mkdir -p /app/site && echo x > /app/site/installed", 30, True),
]


def history(steps=STEPS) -> list[dict]:
    return [{"Created": 1_700_000_000 + index, "CreatedBy": by, "Size": size, "Comment": ""}
            for index, (by, size, _) in enumerate(steps)]


def image(index: int, parent: str | None, layers: int) -> dict:
    return {"Id": f"sha256:{index}", "Parent": parent or "", "Created": f"2024-01-01T00:00:0{index}.123456789Z",
            "RootFS": {"Type": "layers", "Layers": [f"sha256:l{n}" for n in range(layers)]}}


class ChainEngine:
    """The builder's step images of STEPS (each its step's image, its parent the step before) and the history."""

    def __init__(self, top: dict, chain: dict[str, dict]) -> None:
        self.top, self.chain = top, chain

    def image_history(self, ref: str) -> list[dict]:
        assert ref == self.top["Id"]
        return history()

    def inspect_image(self, ref: str) -> dict:
        return self.chain[ref]


def builders_chain() -> list[dict]:
    """base (loaded: no parent), then one image a step; layers counted as the builder adds them."""
    chain, layers = [], 0
    for index, (_, _, made) in enumerate(STEPS):
        layers += made
        chain.append(image(index, chain[-1]["Id"] if chain else None, layers))
    chain[0]["Created"] = BASE_DATE
    return chain


def test_a_step_made_a_layer_when_its_image_has_more_layers_than_its_parent_whatever_its_size() -> None:
    chain = builders_chain()
    assert assemble.made_layers(history(), chain) == [made for _, _, made in STEPS]


def test_before_the_chain_sizes_and_the_layer_count_tell_and_metadata_steps_never_made_one() -> None:
    pulled = {"Id": "sha256:p", "RootFS": {"Layers": ["sha256:a", "sha256:b", "sha256:c", "sha256:d"]}}
    assert assemble.made_layers(history(), [pulled]) == [made for _, _, made in STEPS]
    assert assemble.made_layers(history(), [{**pulled, "RootFS": {"Layers": ["sha256:a", "sha256:b", "sha256:c"]}}]) \
        == [True, False, False, True, True]  # every layer has a size: the steps of size 0 made none


def test_a_repeated_history_marks_the_steps_without_a_layer_and_leaves_the_rest() -> None:
    repeated = assemble.repeated_history(history(), [made for _, _, made in STEPS])
    assert [bool(step.get("empty_layer")) for step in repeated] == [False, True, False, False, False]
    assert repeated[2] == {"created": "2023-11-14T22:13:22Z", "created_by": "/bin/sh -c #(nop) WORKDIR /app"}


def stored_config(chain: list[dict]) -> bytes:
    """The prefix's config as the builder writes it: keys sorted, compact, a layer step without empty_layer."""
    steps = [{"created": link["Created"], "created_by": by, **({} if made else {"empty_layer": True})}
             for link, (by, _, made) in zip(chain, STEPS)]
    config = {"architecture": "amd64", "config": {"Env": ["A=1"], "WorkingDir": "/app"},
              "created": chain[-1]["Created"], "history": steps, "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": chain[-1]["RootFS"]["Layers"]}}
    text = json.dumps(config, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace(">", "\\u003e").encode()  # as Go's encoder escapes them


def test_the_prefix_with_a_directory_only_layer_is_rebuilt_to_the_byte() -> None:
    chain = builders_chain()
    prefix = chain[-1]
    data = stored_config(chain)
    prefix.update({"Id": "sha256:" + hashlib.sha256(data).hexdigest(), "Architecture": "amd64", "Os": "linux",
                   "Config": {"Env": ["A=1"], "WorkingDir": "/app"}})
    engine = ChainEngine(prefix, {link["Id"]: link for link in chain})
    assert assemble.exact_config(engine, prefix) == data  # type: ignore[arg-type]


def test_a_config_that_does_not_hash_to_its_id_is_left_to_the_builder() -> None:
    chain = builders_chain()
    prefix = {**chain[-1], "Id": "sha256:" + "0" * 64, "Architecture": "amd64", "Os": "linux", "Config": {}}
    engine = ChainEngine(prefix, {link["Id"]: link for link in chain})
    with pytest.raises(assemble.NotAssembled, match="could not be rebuilt exactly"):
        assemble.exact_config(engine, prefix)  # type: ignore[arg-type]


def test_every_date_written_is_whole_seconds_in_one_format() -> None:
    # The image's date, its new step's and the base's repeated steps': the same format, or the same inputs
    # would not give the same bytes (and id).
    base = {"Id": "sha256:b", "Architecture": "amd64", "Os": "linux", "Config": {},
            "RootFS": {"Layers": ["sha256:l0"]}}
    repeated = assemble.repeated_history(history()[:1], [True])
    written = assemble.image_config(base, {}, {}, None, 1_700_000_000, repeated, "Dockerfile")
    assert written["created"] == BASE_DATE and written["history"][-1]["created"] == BASE_DATE
    assert written["history"][0]["created"] == BASE_DATE


# -- what the classic builder changes in the base's config, beyond the Dockerfile ----------------------

def parsed(text: str):
    from envctl.images import codeonly
    return codeonly.parse(text)


@pytest.mark.parametrize("tail", ['CMD ["run"]\n', "ENTRYPOINT run\n", 'CMD ["a"]\nENTRYPOINT ["b"]\n'])
def test_a_cmd_or_entrypoint_clears_the_bases_args_escaped_as_the_linux_builder_does(tail: str) -> None:
    base = {"Id": "sha256:b", "Architecture": "amd64", "Os": "linux", "RootFS": {"Layers": []},
            "Config": {"Cmd": ["/bin/sh"], "ArgsEscaped": True, "OpenStdin": True, "StdinOnce": True}}
    resets = assemble.builder_resets(base["Config"], parsed("FROM a\n" + tail))
    written = assemble.image_config(base, resets, {}, None, 0, [], "Dockerfile")["config"]
    assert "ArgsEscaped" not in written  # false: Go leaves it out
    assert written["OpenStdin"] is False and written["StdinOnce"] is False  # a stage starts with stdin closed


def test_without_cmd_or_entrypoint_args_escaped_stays() -> None:
    assert "ArgsEscaped" not in assemble.builder_resets({"ArgsEscaped": True}, parsed("FROM a\nENV A=1\n"))


@pytest.mark.parametrize("tail", ["CMD []\n", "ENTRYPOINT [ ]\n"])
def test_an_empty_command_on_a_base_with_args_escaped_is_left_to_the_builder(tail: str) -> None:
    # moby 20.10 keeps the flag for an empty command, later engines clear it: in doubt, the builder's job.
    with pytest.raises(assemble.NotAssembled, match="ArgsEscaped"):
        assemble.builder_resets({"ArgsEscaped": True}, parsed("FROM a\n" + tail))
    assert assemble.builder_resets({}, parsed("FROM a\n" + tail)) == {"OpenStdin": False, "StdinOnce": False}


def test_the_author_is_written_only_when_given() -> None:
    base = {"Id": "sha256:b", "Architecture": "amd64", "Os": "linux", "RootFS": {"Layers": []}, "Author": "base",
            "Config": {}}
    assert "author" not in assemble.image_config(base, {}, {}, None, 0, [], "Dockerfile")  # not the base's
    written = assemble.image_config(base, {}, {}, None, 0, [], "Dockerfile", author="me")
    assert written["author"] == "me" and written["history"][-1]["author"] == "me"
