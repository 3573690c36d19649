"""Code-only images without the builder: the base's layers, one new layer, the builder's config.

A Dockerfile that only copies context files onto a local base and sets metadata
(`codeonly.py` decides) is written here as `docker save` would write the image: the
base's layers by their diff_ids (the engine has them, so `docker load` never reads them),
one layer tar with the copied files as the classic builder lays them out (`layout.py`),
and the config the builder would end with. The same inputs give the same bytes, so the
same image id. On the reference stack's engine a build step costs seconds; this costs a tenth.
"""
from __future__ import annotations

import calendar
import datetime
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from envctl.backend.engine import Engine
from envctl.errors import Cancelled, EngineUnavailable, EnvctlError
from envctl.images import codeonly
from envctl.images.buildcontext import BuildContext
from envctl.images.layout import Entry, Layout, NotAssembled, write_layer
from envctl.switches import switched_on

def assemble(engine: Engine, context: BuildContext, dockerfile: codeonly.Parsed | codeonly.NotCodeOnly,
             buildargs: dict[str, str], ref: str, labels: dict[str, str], platform: str,
             generated_dockerfile: bytes, on: str | None = None) -> str:
    """Load `ref` made from `context` as the builder would make it; NotAssembled says why not.

    `dockerfile` is the context's Dockerfile as `codeonly.parse` read it (or the tail
    `codeonly.split` left); `labels` win over the Dockerfile's; `generated_dockerfile` is
    the Dockerfile as the builder's context carries it (what `COPY .` copies). `on` is the
    image to put the tail on instead of the FROM image: the prefix the builder made, which
    the loaded image then names as its parent (kept while its child is, removed with it)."""
    try:  # the builder may still make it; its log says why this did not
        image_id = _assemble(engine, context, dockerfile, buildargs, ref, labels, platform, generated_dockerfile, on)
    except (Cancelled, EngineUnavailable):
        raise
    except EnvctlError as exc:  # the engine refused a request: an image went, say
        raise NotAssembled(exc.message) from None
    except OSError as exc:  # a context file changed or went while it was read
        raise NotAssembled(f"{exc.filename or 'a file'}: {exc.strerror or exc}") from None
    if image_id is None:
        raise NotAssembled(f"docker load did not produce {ref}")
    return image_id


def _assemble(engine: Engine, context: BuildContext, dockerfile: codeonly.Parsed | codeonly.NotCodeOnly,
              buildargs: dict[str, str], ref: str, labels: dict[str, str], platform: str,
              generated_dockerfile: bytes, on: str | None) -> str | None:
    base = _local_base(engine, dockerfile, buildargs, platform, on)
    plan = codeonly.decide(dockerfile, buildargs, base.get("Config") or {})  # the one decision, on the real base
    if isinstance(plan, codeonly.NotCodeOnly):
        raise NotAssembled(plan.reason)
    config = {**plan.config, **builder_resets(base.get("Config") or {}, dockerfile)}
    parent = exact_config(engine, base) if on else None
    with engine.path_kinds(base["Id"]) as in_base:
        entries = Layout(context, in_base, generated_dockerfile, in_base.header).entries(plan.steps)
    # The builder's image is dated by its author as of its last step: MAINTAINER's, none before one. On the
    # prefix, that is the prefix's (the tail has no MAINTAINER); on the FROM image, none (not the base's).
    return _load_on(engine, base, entries, _newest(base, entries), config, labels, ref,
                    context.dockerfile, parent=parent, author=base.get("Author") if on else None)


def builder_resets(base_config: dict[str, Any], dockerfile: codeonly.Parsed) -> dict[str, Any]:
    """What the classic builder changes in the base's config beyond what the Dockerfile says: a stage starts
    with stdin closed, and on Linux a CMD or ENTRYPOINT clears ArgsEscaped (a Windows shell-form flag).
    None: the field goes. An empty CMD [] or ENTRYPOINT [] keeps it on some engines and clears it on
    others (moby 20.10 against 25): on a base that has it set, the builder's job."""
    resets: dict[str, Any] = {"OpenStdin": False, "StdinOnce": False}
    commands = [value for name, value in dockerfile.instructions if name in ("CMD", "ENTRYPOINT")]
    if commands and base_config.get("ArgsEscaped"):
        if any(_empty_command(value) for value in commands):
            raise NotAssembled("an empty CMD or ENTRYPOINT on a base with ArgsEscaped set")
        resets["ArgsEscaped"] = None
    return resets


def _empty_command(value: str) -> bool:
    try:
        return json.loads(value.strip() or "[]") == []
    except ValueError:
        return False


def _local_base(engine: Engine, dockerfile: codeonly.Parsed | codeonly.NotCodeOnly, buildargs: dict[str, str],
                platform: str, on: str | None) -> dict[str, Any]:
    """The inspected image to write on: `on`, else the Dockerfile's FROM image; on the engine, for `platform`."""
    if isinstance(dockerfile, codeonly.NotCodeOnly):
        raise NotAssembled(dockerfile.reason)
    base_ref = on or codeonly.base_of(dockerfile, buildargs)
    if isinstance(base_ref, codeonly.NotCodeOnly):
        raise NotAssembled(base_ref.reason)
    if engine.image_id(base_ref) is None:
        raise NotAssembled(f"the base {base_ref} is not on the engine")
    base = engine.inspect_image(base_ref)
    base_platform = "/".join(p for p in (base.get("Os"), base.get("Architecture"), base.get("Variant")) if p)
    if base_platform != platform:
        raise NotAssembled(f"the base {base_ref} is for {base_platform}, not {platform}")
    return base


def _newest(base: dict[str, Any], entries: dict[str, Entry]) -> int:
    """The new image's date, and its new directories': the newest of the base's and the copied files'
    (so that the same inputs give the same bytes)."""
    return max([_epoch(base.get("Created") or "")] + [e.mtime for e in entries.values() if e.mtime is not None])


def _load_on(engine: Engine, base: dict[str, Any], entries: dict[str, Entry], created: int, config: dict[str, Any],
             labels: dict[str, str], ref: str, dockerfile: str, created_by: str | None = None,
             parent: bytes | None = None, author: str | None = None) -> str | None:
    """Load `ref`: the inspected `base`'s layers (referenced, not sent) and one layer of `entries`
    (none when there are none: a config-only image, as the builder's metadata steps make).
    `parent`: the base's exact config, loaded with it so that the engine records the base as its parent."""
    with tempfile.TemporaryDirectory(prefix="envctl-assemble-") as tmp:
        layer = Path(tmp) / "layer.tar"
        diff_id = None
        if entries:
            with open(layer, "wb") as out:
                diff_id = write_layer(entries, created, out)
        history = _history(engine, base, parent)
        image = image_config(base, config, labels, diff_id, created, history, dockerfile, created_by, author)
        layers: list[Path | None] = [None] * len(base["RootFS"]["Layers"]) + ([layer] if entries else [])
        return engine.load_image(image, ref, layers, parent=parent)


def exact_config(engine: Engine, image: dict[str, Any]) -> bytes:
    """The inspected `image`'s config as the engine stores it (the bytes its id hashes), rebuilt from
    what the engine shows: docker load records a parent only if it is in the same archive, and
    `docker save` would send every layer. NotAssembled when the bytes do not hash to the id (an
    image pulled from a registry, say)."""
    history, chain = lineage(engine, image)
    dated: list[dict[str, Any] | None] = [None] * (len(history) - len(chain)) + chain
    steps = [_exact_step(step, by, made) for step, by, made in zip(history, dated, made_layers(history, chain))]
    data = _go_json(_stored_config(image, steps))
    if "sha256:" + hashlib.sha256(data).hexdigest() != image["Id"]:
        raise NotAssembled(f"the config of {image['Id'][7:19]} could not be rebuilt exactly (to load it as the parent)")
    return data


def _exact_step(step: dict[str, Any], image: dict[str, Any] | None, made_layer: bool) -> dict[str, Any]:
    """A history step as the builder wrote it (Go's field order): dated as the step's image when the
    builder's chain has it (each step's image is dated as its step), else as the engine shows it (whole
    seconds, as envctl writes them)."""
    out: dict[str, Any] = {"created": image["Created"] if image else _go_time(step["Created"])}
    if image and image.get("Author"):
        out["author"] = image["Author"]
    if step.get("CreatedBy"):
        out["created_by"] = step["CreatedBy"]
    if step.get("Comment"):
        out["comment"] = step["Comment"]
    if not made_layer:
        out["empty_layer"] = True
    return out


def _stored_config(image: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The config's fields from the inspected `image`, as the builder writes them: keys sorted, unset ones left out."""
    top = {"architecture": image.get("Architecture"), "author": image.get("Author"), "comment": image.get("Comment"),
           "config": image.get("Config"), "container": image.get("Container"),
           "container_config": image.get("ContainerConfig"), "created": image.get("Created"),
           "docker_version": image.get("DockerVersion"), "history": history, "os": image.get("Os"),
           "os.version": image.get("OsVersion"), "rootfs": {"type": "layers", "diff_ids": image["RootFS"]["Layers"]},
           "variant": image.get("Variant")}
    return {key: value for key, value in sorted(top.items()) if value not in (None, "")}


def _go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, <, > and & escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, "\\u%04x" % ord(char))
    return text.encode()


def _go_time(seconds: int) -> str:
    """Whole seconds since the epoch as Go's RFC 3339 (year 1 included, Go's unset time)."""
    return (datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds)).isoformat() + "Z"


# -- which history steps made a layer --------------------------------------------------------
# The engine's history gives each step's layer size, not whether it made a layer: a layer of
# directories only (WORKDIR /app making /app, RUN mkdir) has size 0, as a step without one. The
# builder's chain of step images tells: a step made a layer when its image has more layers than
# its parent. Before the chain (a base loaded or pulled), the base's layer count tells how many.

METADATA_STEPS = frozenset({"ARG", "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "MAINTAINER",
                            "ONBUILD", "SHELL", "STOPSIGNAL", "USER", "VOLUME"})  # never a layer, in either builder


def lineage(engine: Engine, image: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The inspected `image`'s history (oldest first) and its chain: the image and its parents,
    inspected, oldest first; one a step, the last steps'."""
    history = engine.image_history(image["Id"])
    chain = [image]
    while chain[-1].get("Parent") and len(chain) < len(history):
        chain.append(engine.inspect_image(chain[-1]["Parent"]))
    return history, chain[::-1]


def made_layers(history: list[dict[str, Any]], chain: list[dict[str, Any]]) -> list[bool]:
    """Whether each step of `history` made a layer; `chain` as `lineage` gives it."""
    counts = [len(image["RootFS"]["Layers"]) for image in chain]
    first = len(history) - len(chain)  # the oldest chained image's own history ends here
    own = _made_in_own_history(history[:first + 1], counts[0])
    return own + [after > before for before, after in zip(counts, counts[1:])]


def _made_in_own_history(steps: list[dict[str, Any]], layers: int) -> list[bool]:
    """Whether each of an image's `steps` made one of its `layers`: those with a size did; of those of
    size 0, as many as there are layers left, steps that may make one (a RUN, a WORKDIR) before those
    that never do, the earliest first. Exact unless more steps may have made the layers left than
    there are: then a guess, which `exact_config`'s hash check catches."""
    made = [bool(step.get("Size")) for step in steps]
    empty = [index for index, step in enumerate(steps) if not made[index]]
    candidates = sorted(empty, key=lambda index: _metadata_only(steps[index]))  # stable: the earliest first
    for index in candidates[:max(layers - sum(made), 0)]:
        made[index] = True
    return made


def _metadata_only(step: dict[str, Any]) -> bool:
    """Whether the step is an instruction that never makes a layer ("ENV ..." or the classic builder's
    "/bin/sh -c #(nop)  ENV ...")."""
    words = (step.get("CreatedBy") or "").split("#(nop)", 1)[-1].split()
    return bool(words) and words[0] in METADATA_STEPS


def _history(engine: Engine, base: dict[str, Any], parent: bytes | None) -> list[dict[str, Any]]:
    """The base's history as the new image repeats it: the parent's exact one when loaded with it
    (a parent must match), else as the engine shows it."""
    if parent is not None:
        return json.loads(parent)["history"]
    history, chain = lineage(engine, base)
    return repeated_history(history, made_layers(history, chain))


def repeated_history(history: list[dict[str, Any]], made: list[bool]) -> list[dict[str, Any]]:
    """An image's history as the engine shows it (oldest first), as an image config's history;
    `made`: whether each step made a layer (`made_layers`)."""
    return [{**({"created": _go_time(h["Created"])} if (h.get("Created") or 0) > 0 else {}),  # unset: Go's year 1
             "created_by": h.get("CreatedBy") or "", **({"comment": h["Comment"]} if h.get("Comment") else {}),
             **({} if layer else {"empty_layer": True})} for h, layer in zip(history, made)]


def with_files(engine: Engine, base_ref: str, files: dict[str, bytes], env: dict[str, str], labels: dict[str, str],
               ref: str, what: str) -> str:
    """`base_ref` plus `files` (root-owned, 0644), `env` and `labels`: what `docker commit` of a container
    with the files put in would make, loaded as one more layer without a container (a tenth of the time)."""
    base = engine.inspect_image(base_ref)
    created = max(_epoch(base.get("Created") or ""), 0)  # a loaded root filesystem is dated year 1
    entries = {path: Entry("file", 0o644, created, data) for path, data in files.items()}
    base_env = [e for e in (base.get("Config") or {}).get("Env") or [] if e.split("=", 1)[0] not in env]
    image_id = _load_on(engine, base, entries, created, {"Env": base_env + [f"{k}={v}" for k, v in env.items()]},
                        labels, ref, "", created_by=f"envctl: {what}")
    if image_id is None:
        raise EnvctlError(f"docker load did not produce {ref}")
    return image_id


def image_config(base: dict[str, Any], config: dict[str, Any], labels: dict[str, str], diff_id: str | None,
                 created: int, history: list[dict[str, Any]], dockerfile: str,
                 created_by: str | None = None, author: str | None = None) -> dict[str, Any]:
    """The image config the builder would write: the base's, the Dockerfile's changes, `labels` last;
    `history` is the base's (as `_history` gives it); no `diff_id`: no new layer; `author` as the builder
    writes it for the image and its new step."""
    merged = {**(base.get("Config") or {}), **config, "Image": base["Id"]}
    merged["Labels"] = {**(merged.get("Labels") or {}), **labels}
    merged = {k: v for k, v in merged.items() if v is not None}
    stamp = _go_time(created)
    steps = [*history, {"created": stamp, **({"author": author} if author else {}),
                        "created_by": created_by or f"envctl: {dockerfile}'s files and settings, without the builder",
                        **({} if diff_id else {"empty_layer": True})}]
    diff_ids = [*base["RootFS"]["Layers"], *([diff_id] if diff_id else [])]
    out = {"architecture": base.get("Architecture"), "os": base.get("Os"), "created": stamp, "config": merged,
           "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": steps}
    if base.get("Variant"):
        out["variant"] = base["Variant"]
    if author:
        out["author"] = author
    return out


def _epoch(created: str) -> int:
    """An engine's RFC 3339 time (nanoseconds and all) as seconds since the epoch; 0 if unreadable."""
    try:
        return calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def enabled() -> bool:
    """$ENVCTL_ASSEMBLE=0 (or off, false, no) sends every build through the builder."""
    return switched_on("ENVCTL_ASSEMBLE")
