"""The `bases:` section: the images the project builds its services on (bootstrap, image, dockerfile)."""
from __future__ import annotations

from typing import Any

from envctl.topology.model import Base, Bootstrap
from envctl.topology.readers import Reader
from envctl.topology.source import KeyPath

BASE_KEYS = ("bootstrap", "image", "from", "dockerfile", "context", "args", "trust_host_ca")
BOOTSTRAP_KEYS = ("distro", "suite", "packages", "mirror", "variant")


def base(reader: Reader, name: str, raw: Any, path: KeyPath) -> Base | None:
    body = reader.mapping(raw, path, BASE_KEYS, f"base '{name}'")
    if body is None:
        return None
    kinds = [k for k in ("bootstrap", "image", "dockerfile") if k in body]
    if len(kinds) != 1:
        reader.problem(path, f"base '{name}' needs exactly one of bootstrap, image or dockerfile (has {len(kinds)})",
                       "give 'bootstrap: {distro: debian, suite: bookworm}', 'image: NAME', "
                       "or 'from: BASE' with 'dockerfile: PATH'")
        return None
    if "from" in body and "dockerfile" not in body:
        reader.problem(path + ("from",), "'from' needs a 'dockerfile' that builds on it", "add 'dockerfile: PATH'")
    base = Base(name=name)
    fields: dict[str, Any] = {}
    if "bootstrap" in body:
        fields["bootstrap"] = bootstrap(reader, body["bootstrap"], path + ("bootstrap",))
    if "image" in body:
        fields["image"] = reader.string(body["image"], path + ("image",))
    if "from" in body:
        fields["parent"] = reader.string(body["from"], path + ("from",))
    if "dockerfile" in body:
        dockerfile = reader.relative_path(body["dockerfile"], path + ("dockerfile",))
        if dockerfile and not dockerfile.is_file():
            reader.problem(path + ("dockerfile",), f"no Dockerfile at {dockerfile}", "fix the path (relative to the topology file)")
        fields["dockerfile"] = dockerfile
        context = reader.relative_path(body["context"], path + ("context",)) if "context" in body else (
            dockerfile.parent if dockerfile else None)
        if context and not context.is_dir():
            reader.problem(path + ("context",), f"no directory at {context}", "fix the path (relative to the topology file)")
        fields["context"] = context
    if "args" in body:
        fields["args"] = reader.args(body["args"], path + ("args",))
    if "trust_host_ca" in body:
        fields["trust_host_ca"] = reader.boolean(body["trust_host_ca"], path + ("trust_host_ca",))
    if any(v is None for v in fields.values()):
        return None
    return Base(**{**base.__dict__, **fields})


def bootstrap(reader: Reader, raw: Any, path: KeyPath) -> Bootstrap | None:
    body = reader.mapping(raw, path, BOOTSTRAP_KEYS, "bootstrap")
    if body is None:
        return None
    distro = reader.string(body.get("distro", "debian"), path + ("distro",))
    if distro not in (None, "debian"):
        reader.problem(path + ("distro",), f"cannot bootstrap distro {distro!r}",
                       "use 'distro: debian', or an 'image:' or 'dockerfile:' base")
        return None
    if "suite" not in body:
        reader.problem(path, "bootstrap needs a 'suite'", "add 'suite: bookworm' (or another Debian release)")
        return None
    suite = reader.string(body["suite"], path + ("suite",))
    packages = reader.string_list(body.get("packages", []), path + ("packages",), "packages")
    mirror = reader.string(body["mirror"], path + ("mirror",)) if "mirror" in body else None
    variant = reader.string(body.get("variant", "minbase"), path + ("variant",))
    if None in (distro, suite, packages, variant) or ("mirror" in body and mirror is None):
        return None
    return Bootstrap(distro=distro, suite=suite, packages=packages, mirror=mirror, variant=variant)
