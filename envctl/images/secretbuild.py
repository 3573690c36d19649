"""Build steps that read secrets, on the classic builder (the Docker SDK has no BuildKit).

A Dockerfile asks for a secret the way BuildKit reads it, so the same file builds anywhere:

    RUN --mount=type=secret,id=npm_token,env=NPM_TOKEN npm ci
    RUN --mount=type=ssh git clone git@example.org:team/lib.git

The classic builder refuses `--mount`, so envctl builds such a Dockerfile in parts. The
instructions between secret steps are ordinary builds. Each secret step runs in a
throw-away container with the secrets bind-mounted from a private host directory (and the
SSH agent's socket beside them), and is committed without them: a bind mount is not part of
the container's filesystem, so no layer, history entry or config ever holds a secret.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from envctl.errors import EnvctlError

SECRETS_DIR = "/run/secrets"
SSH_SOCKET = f"{SECRETS_DIR}/ssh_agent.sock"


@dataclass(frozen=True)
class SecretMount:
    kind: str  # "secret" or "ssh"
    id: str
    target: str | None = None  # a file path for a secret mounted elsewhere than /run/secrets/ID
    env: str | None = None  # also export the secret's value as this variable, for the step only
    required: bool = True


@dataclass(frozen=True)
class SecretStep:
    line: int
    command: str | list[str]  # shell form (a string) or exec form (a list)
    mounts: tuple[SecretMount, ...]


@dataclass
class Plan:
    """The Dockerfile cut at its secret steps: text chunks to build, with secret steps between."""

    head: list[str] = field(default_factory=list)  # the lines before the first secret step (FROM and all)
    parts: list[tuple[SecretStep, list[str]]] = field(default_factory=list)  # each step, then the lines after it
    args: list[str] = field(default_factory=list)  # the stage's ARG lines, repeated in every later part

    @property
    def needs_secrets(self) -> bool:
        return bool(self.parts)


# What Go's unicode.IsSpace calls white space: the builder strips it from the left of an instruction's first line.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000"
# The builder's line continuation (moby/buildkit's parser): a backslash ending the line, spaces and tabs after
# it allowed, unless the backslash is itself escaped ("\\" at the end is a literal backslash).
_CONTINUATION = re.compile(r"([^\\])\\[ \t]*$|^\\[ \t]*$")


def _trim_continuation(line: str) -> tuple[str, bool]:
    """`line` without its continuation backslash, and whether the instruction ends with it."""
    if _CONTINUATION.search(line):
        return _CONTINUATION.sub(r"\1", line), False
    return line, True


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction) as the builder's parser reads them: a continued line's parts
    concatenated as they are (the backslash and the spaces after it removed, nothing added, the next
    part's leading white space kept); comments and blank lines dropped, also inside a continuation."""
    out: list[tuple[int, str]] = []
    # Lines end at "\n" alone, as the builder counts them (splitlines() would also cut at \x0c, \u2028...).
    lines = [raw.rstrip("\r\n") for raw in text.removeprefix("\ufeff").split("\n")]
    index = 0
    while index < len(lines):
        first = lines[index].lstrip(_GO_SPACE)
        index += 1
        start = index
        if first.startswith("#"):
            continue
        line, ended = _trim_continuation(first)
        while not ended and index < len(lines):
            raw = lines[index]
            index += 1
            if not raw.lstrip(_GO_SPACE) or raw.lstrip(_GO_SPACE).startswith("#"):
                continue  # Docker skips empty lines and comments inside a continued instruction
            part, ended = _trim_continuation(raw)
            line += part
        if line.strip():  # a lone '\\' is no instruction
            out.append((start, line))
    return out


def plan(text: str, dockerfile: Path) -> Plan:
    """Split a Dockerfile at its `RUN --mount=type=secret|ssh` steps; raise a clear error for what envctl cannot build."""
    result = Plan()
    lines = _logical_lines(text)
    stages = sum(1 for _, line in lines if line.split(None, 1)[0].upper() == "FROM")
    current = result.head
    for number, line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and stages <= 1:
            result.args.append(line)
        if keyword == "RUN" and rest.lstrip().startswith("--mount"):
            if stages > 1:
                raise EnvctlError(f"{dockerfile}:{number}: RUN --mount in a multi-stage Dockerfile",
                                  fix="envctl builds secret steps in single-stage Dockerfiles; move the step into "
                                  "a Dockerfile of its own (a base), or into the only stage")
            step = _secret_step(number, rest, dockerfile)
            current = []
            result.parts.append((step, current))
            continue
        current.append(line)
    if result.parts:
        _check_utf8(lines, dockerfile)
        if _escape_token(text) != "\\":
            raise EnvctlError(f"{dockerfile}:1: a Dockerfile with secret steps sets another escape character",
                              fix="remove the '# escape=' line (envctl cuts such a Dockerfile into parts, and reads "
                              "its lines with the default escape character, '\\')")
    return result


_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")


def _escape_token(text: str) -> str:
    """The escape character a `# escape=` parser directive sets ("\\" without one): directives are the
    file's first lines, up to the first line that is not one."""
    for line in text.removeprefix("\ufeff").split("\n"):
        found = _DIRECTIVE.match(line.rstrip("\r"))
        if not found:
            break
        if found.group(1).lower() == "escape":
            return found.group(2)
    return "\\"


def _check_utf8(lines: list[tuple[int, str]], dockerfile: Path) -> None:
    """A secret step's command and the ARG values it sees reach the engine as JSON text, which has no
    way to carry bytes that are not UTF-8 as they are (the engine would run U+FFFD in their place)."""
    for number, line in lines:
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "ARG" or (keyword.upper() == "RUN" and rest.lstrip().startswith("--mount")):
            try:
                line.encode()
            except UnicodeEncodeError:
                raise EnvctlError(f"{dockerfile}:{number}: the line has bytes that are not UTF-8, which envctl "
                                  "cannot pass to a secret step as they are",
                                  fix="save the Dockerfile as UTF-8, or write such bytes with printf escapes "
                                  "(printf '\\351')") from None


def _secret_step(number: int, rest: str, dockerfile: Path) -> SecretStep:
    mounts = []
    remaining = rest.strip()
    while remaining.startswith("--"):
        flag, _, remaining = remaining.partition(" ")
        remaining = remaining.strip()
        name, _, value = flag[2:].partition("=")
        if name != "mount":
            raise EnvctlError(f"{dockerfile}:{number}: RUN --{name} is not supported by envctl's builder",
                              fix="use only --mount=type=secret,... and --mount=type=ssh on RUN")
        mounts.append(_mount(value, number, dockerfile))
    if not remaining:
        raise EnvctlError(f"{dockerfile}:{number}: RUN has mounts but no command", fix="add the command after the flags")
    command: str | list[str] = remaining
    if remaining.startswith("["):
        try:
            parsed = json.loads(remaining)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
            command = parsed
    return SecretStep(number, command, tuple(mounts))


def _mount(spec: str, number: int, dockerfile: Path) -> SecretMount:
    options: dict[str, str] = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        options[key.strip()] = value.strip()
    kind = options.get("type", "")
    if kind not in ("secret", "ssh"):
        raise EnvctlError(f"{dockerfile}:{number}: --mount=type={kind or '?'} is not supported by envctl's builder",
                          fix="envctl mounts type=secret and type=ssh; for caches, use a base image instead")
    mount_id = options.get("id") or ("default" if kind == "ssh" else "")
    target = options.get("target") or options.get("dst") or options.get("destination")
    if kind == "secret" and not mount_id:
        if not target:
            raise EnvctlError(f"{dockerfile}:{number}: a secret mount needs id=NAME", fix="write --mount=type=secret,id=NAME")
        mount_id = Path(target).name
    required = options.get("required", "true" if kind == "secret" else "false").lower() in ("true", "1", "")
    return SecretMount(kind, mount_id, target if kind == "secret" else None, options.get("env"), required)


def step_command(step: SecretStep, shell: list[str], args: dict[str, str]) -> list[str]:
    """The argv that runs the step, exporting build args and `env=` secrets for it alone.

    Values are read from the mounted files at run time, so the command line (which becomes
    the image history's 'created by') never holds a secret.
    """
    exports = [f"export {name}={shlex.quote(value)}" for name, value in sorted(args.items())]
    for mount in step.mounts:
        if mount.kind == "secret" and mount.env:
            exports.append(f'export {mount.env}="$(cat {shlex.quote(secret_path(mount))})"')
        if mount.kind == "ssh":
            exports.append(f"export SSH_AUTH_SOCK={SSH_SOCKET}")
    prelude = "; ".join(exports)
    if isinstance(step.command, list):
        if not prelude:
            return list(step.command)
        return ["/bin/sh", "-c", prelude + '; exec "$@"', "sh", *step.command]
    return [*shell, (prelude + "; " if prelude else "") + step.command]


def secret_path(mount: SecretMount) -> str:
    return mount.target or f"{SECRETS_DIR}/{mount.id}"


def declared_args(arg_lines: list[str], given: dict[str, str]) -> dict[str, str]:
    """The values a step sees for the stage's ARGs: given build args, else the ARG's default."""
    values = {}
    for line in arg_lines:
        for item in shlex.split(line.partition(" ")[2]):
            name, has_default, default = item.partition("=")
            if name in given:
                values[name] = given[name]
            elif has_default:
                values[name] = default
    return values


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_ids(step: SecretStep, dockerfile: Path, allowed_secrets: tuple[str, ...], ssh: dict[str, str],
              where: str) -> None:
    for mount in step.mounts:
        if not _SAFE_ID.match(mount.id):
            raise EnvctlError(f"{dockerfile}:{step.line}: {mount.id!r} is not a usable id", fix="use letters, digits, '.', '_' and '-'")
        if mount.kind == "secret" and mount.id not in allowed_secrets:
            raise EnvctlError(
                f"{dockerfile}:{step.line}: the step mounts secret '{mount.id}', which {where}.build.secrets does not list",
                fix=f"add '{mount.id}' to {where}.build.secrets (and declare it under the top-level 'secrets:')")
        if mount.kind == "ssh" and mount.id not in ssh and mount.required:
            raise EnvctlError(f"{dockerfile}:{step.line}: the step mounts the SSH agent '{mount.id}', "
                              f"which {where}.build.ssh does not list",
                              fix=f"add ssh: [{mount.id}] under {where}.build ('default' forwards $SSH_AUTH_SOCK)")
