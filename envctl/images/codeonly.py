"""Whether a Dockerfile only puts context files on a base image and sets metadata ("code-only").

Such an image needs no builder: `assemble.py` writes it as one new layer on the base's
layers. This module decides, without an engine, and says what the image would be: the
FROM image, the files to copy and directories to create (in order), and the config the
classic builder would end with, given the base's config. It reads a Dockerfile once
(`parse`: which instructions, enough for the build scheduler's guess) and then decides
what it makes with the build's arguments on its base (`decide`, when the base is there). Anything it does not understand
exactly (RUN, several stages, flags on COPY, wildcards, URLs, SHELL, ...) is not code-only,
with the reason, and the builder does it as before.

A Dockerfile that is not code-only may still end in a code-only tail: `split` cuts it after
its last instruction that needs the builder (the prefix, built by the builder) and returns
the rest as a `Parsed` to assemble on the prefix's image, the stage's ARGs replayed first so
they keep their meaning in the tail.
"""
from __future__ import annotations

import io
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter

from envctl.images.buildcontext import GENERATED_DOCKERFILE

# The parts of an image's config a code-only Dockerfile may change (the builder's names).
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "StopSignal")
ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")  # ADD would unpack these
WILDCARDS = "*?[\\"  # Go's filepath.Match; its `*` matches dotfiles too
CONTINUED = re.compile(r"\\[ \t]*$")  # the builder's line continuation: a backslash, then spaces or tabs
CONTINUED_FOR_THE_PARSER = re.compile(r"\\\s*$")  # dockerfile_parse's: then any whitespace
# Two backslashes at a line's end: a continuation for dockerfile_parse and older builders, not for newer ones.
ESCAPED_BACKSLASH = re.compile(r"\\\\[ \t]*$")
DIRECTIVE = re.compile(r"#\s*(escape|syntax|check)\s*=", re.IGNORECASE)  # after leading whitespace
MAX_LINE = 65534  # bytes: the builder's line scanner fails on a longer line (with its "\n", over 64 KiB)
# Whitespace to Python (str.split, strip, dockerfile_parse's \s) the builder reads otherwise, or not as whitespace.
ODD_WHITESPACE = re.compile(r"[^\S \t\n]")
# A variable as the builder and dockerfile_parse both read it: $NAME or ${NAME}, NAME plain ASCII.
VARIABLE = re.compile(r"\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*(?!\w))")
SURROGATE = re.compile("[\ud800-\udfff]")
PORT = re.compile(r"[1-9][0-9]{0,4}")
# STOPSIGNAL values the builder accepts on Linux (it checks them); others are left to it.
SIGNALS = {"HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
           "ALRM", "TERM", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM",
           "PROF", "WINCH", "IO", "PWR", "SYS"}


@dataclass(frozen=True)
class Copy:
    """COPY/ADD of context paths (normalised, relative to the context) to an absolute destination."""

    sources: tuple[str, ...]
    destination: str  # absolute; ends with "/" when it names a directory
    add: bool = False


@dataclass(frozen=True)
class Workdir:
    path: str  # absolute; the builder creates it (root-owned, 0755) when the base lacks it


@dataclass(frozen=True)
class CodeOnly:
    base: str  # the FROM image, build arguments substituted
    steps: tuple[Copy | Workdir, ...]
    config: dict[str, Any] = field(default_factory=dict)  # CONFIG_KEYS as the builder would leave them


@dataclass(frozen=True)
class NotCodeOnly:
    reason: str


class _Refused(Exception):
    pass


@dataclass(frozen=True)
class Parsed:
    """A Dockerfile of one stage whose every instruction could be code-only; what it makes depends
    on the build's arguments and the base's config (`decide`)."""

    before_from: tuple[str, ...]  # the values of the ARGs before FROM
    from_value: str
    instructions: tuple[tuple[str, str], ...]  # (INSTRUCTION, value) after FROM


@dataclass(frozen=True)
class Split:
    """A one-stage Dockerfile cut after its last instruction that needs the builder."""

    prefix: str  # the Dockerfile up to and including that instruction: the builder's part
    tail: Parsed  # the stage's ARGs, then the instructions after the cut: code-only on the prefix's image


def parse(text: str) -> Parsed | NotCodeOnly:
    """The Dockerfile `text` read once, or why it needs the builder whatever its arguments and base
    (a RUN, several stages, a parser directive...)."""
    stage = _stage(text)
    if isinstance(stage, NotCodeOnly):
        return stage
    before, from_value, after = stage
    for name, _, _ in after:
        if name not in _HANDLERS:
            return NotCodeOnly(f"{name} needs the builder")
    instructions = tuple((name, value) for name, value, _ in after)
    refused = _refused_whatever_the_base(before, from_value, instructions)
    return refused or Parsed(before, from_value, instructions)


def split(text: str) -> Split | NotCodeOnly:
    """`text` cut after its last instruction code-only cannot do, or why not (see `Split`)."""
    stage = _stage(text)
    if isinstance(stage, NotCodeOnly):
        return stage
    before, from_value, after = stage
    cuts = [index for index, (name, _, _) in enumerate(after) if name not in _HANDLERS]
    if not cuts:
        return NotCodeOnly("code-only: nothing for the builder")
    args = [(name, value) for name, value, _ in after[:cuts[-1]] if name == "ARG"]
    if any("$" in value for _, value in args):  # its default may read an ENV the prefix set before it
        return NotCodeOnly("an ARG before the last RUN (or other builder step) has a default with a variable")
    if any(name in ("COPY", "ADD") and _may_copy_the_root(value) for name, value, _ in after[:cuts[-1]]):
        return NotCodeOnly(f"a COPY of the context's top or of {GENERATED_DOCKERFILE} before the last RUN (it "
                           "would copy a different generated Dockerfile)")
    tail = tuple(args) + tuple((name, value) for name, value, _ in after[cuts[-1] + 1:])
    refused = _refused_on_the_prefix([name for name, _, _ in after[:cuts[-1] + 1]], tail) or \
        _refused_whatever_the_base(before, from_value, tail)
    if refused:  # found now, before the builder makes a prefix that would then go unused
        return refused
    # The builder counts lines at "\n" alone (as dockerfile_parse does): not at \x0c, \x1c, \u2028...
    prefix = "\n".join(text.split("\n")[:after[cuts[-1]][2] + 1]) + "\n"
    return Split(prefix, Parsed(before, from_value, tail))


def _refused_on_the_prefix(prefix_names: list[str], tail: tuple[tuple[str, str], ...]) -> NotCodeOnly | None:
    """Why the tail cannot go on the image the builder makes of the prefix (whose instructions are
    `prefix_names`), whatever the base: what the prefix's image carries that `decide` would not see."""
    if "ONBUILD" in prefix_names:
        return NotCodeOnly("an ONBUILD before the last RUN: its image carries the trigger, which the "
                           "assembler leaves to the builder")
    tail_names = [name for name, _ in tail]
    if "CMD" in prefix_names and "ENTRYPOINT" in tail_names:  # the builder keeps a CMD set anywhere in the stage
        return NotCodeOnly("an ENTRYPOINT after the last RUN with a CMD before it (the builder keeps that CMD)")
    try:  # a CMD or ENTRYPOINT's JSON form the builder reads otherwise: refused before the prefix is built
        shell_form = any(name in ("CMD", "ENTRYPOINT") and _exec_form(value) is None for name, value in tail)
    except _Refused as exc:
        return NotCodeOnly(str(exc))
    if "SHELL" in prefix_names and shell_form:
        return NotCodeOnly("a shell-form CMD or ENTRYPOINT after a SHELL (the builder runs it with that shell)")
    return None


def _refused_whatever_the_base(before: tuple[str, ...], from_value: str,
                               instructions: tuple[tuple[str, str], ...]) -> NotCodeOnly | None:
    """Why `decide` will refuse `instructions` on any base with any build arguments, or None: found
    before a base's config is read or a prefix built. A value with a variable may become anything:
    only its COPY/ADD flags and quotes are checked here, the rest when `decide` knows its value."""
    state = _State({}, {})
    try:
        if any(word.startswith("--") for word in from_value.split()):
            raise _Refused("FROM with flags")
        if "$" not in from_value:
            _from(from_value, {})
        for value in (from_value, *before):
            _expandable(value)
        for value in before:
            if "$" not in value:
                _arg(value, {}, {})
        for name, value in instructions:
            if name in ("COPY", "ADD"):
                _copy_flags(name == "ADD", value)
            if name not in ("CMD", "ENTRYPOINT") and not value.strip().startswith("["):
                _expandable(value)  # with a variable: its handler runs only once `decide` knows its value
            if "$" not in value:
                _HANDLERS[name](state, value, {})
    except _Refused as exc:
        return NotCodeOnly(str(exc))
    return None


def _may_copy_the_root(value: str) -> bool:
    """Whether a COPY/ADD's sources may take the context's top-level files or the generated Dockerfile."""
    words = value.split()
    while words and words[0].startswith("--"):  # flags come first
        words = words[1:]
    if words and words[0].startswith("["):  # the JSON form, after the flags
        try:
            words = _json_array(value[value.index(words[0]):], "COPY")
        except _Refused:
            return True
        if words is None:
            return True
    return any(_names_the_root(w) for w in words[:-1])


def _names_the_root(source: str) -> bool:
    """Whether a COPY source is the context's top, a pattern that may match its top-level files (cleaned
    as the builder cleans it first: "./*", "//*", "a/../*" and "*/." are "*"), or the generated Dockerfile."""
    if "$" in source:
        return True
    normal = "/" + posixpath.normpath("/" + source).lstrip("/")
    return normal in ("/", "/" + GENERATED_DOCKERFILE) or (
        posixpath.dirname(normal) == "/" and any(c in normal for c in WILDCARDS))


def _stage(text: str) -> tuple[tuple[str, ...], str, list[tuple[str, str, int]]] | NotCodeOnly:
    """The one stage of `text`: the ARG values before FROM, FROM's value and each instruction after it
    (name, value, last line), comments left out; or why it is not one plain stage."""
    lines = text.removesuffix("\n").split("\n")  # no line after the last "\n"
    unlike = _read_unlike_the_builder(lines) or _continued_unlike_the_builder(lines)
    if unlike:
        return NotCodeOnly(unlike)
    structure = DockerfileParser(fileobj=io.BytesIO(text.encode())).structure
    unlike = _odd_whitespace(lines, structure)
    if unlike:
        return NotCodeOnly(unlike)
    instructions = [(i["instruction"], i["value"], i["endline"]) for i in structure if i["instruction"] != "COMMENT"]
    froms = [index for index, (name, _, _) in enumerate(instructions) if name == "FROM"]
    if len(froms) != 1:
        return NotCodeOnly("a Dockerfile with several stages" if froms else "no FROM")
    before, after = instructions[:froms[0]], instructions[froms[0] + 1:]
    for name, _, _ in before:
        if name != "ARG":
            return NotCodeOnly(f"{name} before FROM")
    return tuple(value for _, value, _ in before), instructions[froms[0]][1], after


def _read_unlike_the_builder(lines: list[str]) -> str | None:
    """Where the builder may read `lines` otherwise than dockerfile_parse, whatever the instruction: a parser
    directive (anywhere: harmless), a byte-order mark or a byte that is not UTF-8 (read as U+FFFD), a line the
    builder finds too long. None: nowhere."""
    for number, line in enumerate(lines, 1):
        if DIRECTIVE.match(line.lstrip()):
            return f"line {number}: a parser directive (# escape=, # syntax= or # check=)"
        if "\ufeff" in line or "\ufffd" in line:
            return f"line {number}: a byte-order mark, or bytes that are not UTF-8"
        if len(line.encode()) > MAX_LINE:
            return f"line {number}: longer than the builder reads ({MAX_LINE} bytes)"
    return None


def _odd_whitespace(lines: list[str], structure: list[dict[str, Any]]) -> str | None:
    """Where whitespace other than spaces and tabs (a form feed, \\x1c, a no-break space, a "\\r" before the
    line's end...) is in a line envctl reads, which Python splits and strips otherwise than the builder. Only the
    lines of an instruction the builder does (RUN...) may have it: they go to the builder as they are."""
    builders = {number for i in structure if i["instruction"] not in (*_HANDLERS, "FROM", "COMMENT")
                for number in range(i["startline"], i["endline"] + 1)}
    for number, line in enumerate(lines):
        if number not in builders and ODD_WHITESPACE.search(line.removesuffix("\r")):
            return f"line {number + 1}: whitespace other than spaces and tabs"
    return None


def _continued_unlike_the_builder(lines: list[str]) -> str | None:
    """Where dockerfile_parse would read a continued instruction (a trailing backslash) otherwise than
    the builder, which skips blank lines and comments inside one and ends the last at the end of the
    file, where dockerfile_parse ends it at a blank line and drops one left open. None: nowhere."""
    continued = False
    for number, raw in enumerate(lines, 1):
        line = raw.removesuffix("\r")  # the builder reads "\r\n" as "\n"
        comment = line.lstrip().startswith("#")
        if continued and (comment or not line.strip()):
            return f"line {number}: a blank line or comment inside an instruction continued with a backslash"
        if comment:
            continue
        if ESCAPED_BACKSLASH.search(line):  # builders differ: `\\` escapes the backslash in newer ones
            return f"line {number}: two backslashes at the end of a line"
        continued = bool(CONTINUED.search(line))
        if continued != bool(CONTINUED_FOR_THE_PARSER.search(raw)):
            return f"line {number}: a backslash followed by whitespace other than spaces and tabs"
    if continued:
        return "the last instruction ends in a backslash, continued past the end of the file"
    return None


def classify(text: str, buildargs: dict[str, str], base_config: dict[str, Any] | None = None) -> CodeOnly | NotCodeOnly:
    """What the Dockerfile `text` makes, or why it needs the builder; `base_config` is the FROM image's config."""
    parsed = parse(text)
    return parsed if isinstance(parsed, NotCodeOnly) else decide(parsed, buildargs, base_config)


def base_of(parsed: Parsed, buildargs: dict[str, str]) -> str | NotCodeOnly:
    """The FROM image, build arguments substituted: the base `decide` needs the config of."""
    try:
        return _from(parsed.from_value, _meta(parsed, buildargs))
    except _Refused as exc:
        return NotCodeOnly(str(exc))


def decide(parsed: Parsed, buildargs: dict[str, str], base_config: dict[str, Any] | None = None) -> CodeOnly | NotCodeOnly:
    """What `parsed` makes with these arguments on a base of `base_config`, or why it needs the builder."""
    try:
        return _decide(parsed, buildargs, dict(base_config or {}))
    except _Refused as exc:
        return NotCodeOnly(str(exc))


def _meta(parsed: Parsed, buildargs: dict[str, str]) -> dict[str, str]:
    """The ARGs before FROM: what FROM (and a redeclared ARG) may name."""
    meta: dict[str, str] = {}
    for value in parsed.before_from:
        meta.update(_arg(value, buildargs, {}))
    return meta


def _decide(parsed: Parsed, buildargs: dict[str, str], base_config: dict[str, Any]) -> CodeOnly:
    if base_config.get("OnBuild"):  # the builder runs them first (and clears them): RUNs, COPYs...
        raise _Refused("the base image has ONBUILD triggers, which the builder runs")
    meta = _meta(parsed, buildargs)
    base = _from(parsed.from_value, meta)
    state = _State({k: base_config.get(k) for k in CONFIG_KEYS}, buildargs)
    state.shell = base_config.get("Shell")
    state.config["Env"] = list(state.config.get("Env") or [])
    for name, value in parsed.instructions:
        _HANDLERS[name](state, value, meta)
    return CodeOnly(base, tuple(state.steps), state.config)


class _State:
    def __init__(self, config: dict[str, Any], buildargs: dict[str, str]) -> None:
        self.config = config
        self.buildargs = buildargs
        self.args: dict[str, str] = {}  # ARGs declared after FROM, with their values
        self.steps: list[Copy | Workdir] = []
        self.cmd_set = False
        self.shell: list[str] | None = None  # a SHELL the base set: a shell-form command would run with it

    def variables(self) -> dict[str, str]:
        """What `$NAME` means here: the ARGs, overridden by the environment (as the builder does)."""
        env = dict(entry.split("=", 1) for entry in self.config.get("Env") or [] if "=" in entry)
        return {**self.args, **env}

    def words(self, value: str) -> list[str]:
        return list(WordSplitter(_expandable(value), args=self.variables()).split())

    def expand(self, value: str) -> str:
        return WordSplitter(_expandable(value), args=self.variables()).dequote()


def _expandable(value: str) -> str:
    """`value`, when dockerfile_parse expands it as the builder does: no backslash (escapes differ), each
    `$` a plain $NAME or ${NAME} (no ${NAME:-default}, no lone `$`)."""
    if "\\" in value:
        raise _Refused(f"a backslash in {value!r} (the builder's escapes differ)")
    if "$" in VARIABLE.sub("", value):
        raise _Refused(f"a `$` other than $NAME or ${{NAME}} in {value!r} (the builder's expansion differs)")
    return value


def _from(value: str, meta: dict[str, str]) -> str:
    words = list(WordSplitter(_expandable(value), args=meta).split())
    if any(w.startswith("--") for w in words):
        raise _Refused("FROM with flags")
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise _Refused(f"FROM {value!r} is not understood")
    if not words[0] or words[0] == "scratch" or "$" in words[0]:
        raise _Refused("FROM scratch, or an unset build argument")
    if any(c.isspace() for c in words[0]):
        raise _Refused(f"FROM {value!r}: an image name with whitespace")
    return words[0]


def _arg(value: str, buildargs: dict[str, str], variables: dict[str, str]) -> dict[str, str]:
    name, has_default, default = value.partition("=")
    name = name.strip()
    if " " in name or not name or len(list(WordSplitter(_expandable(value)).split())) != 1:
        raise _Refused(f"ARG {value!r} is not understood (one ARG a line)")
    if name in buildargs:
        return {name: buildargs[name]}
    if has_default:
        return {name: WordSplitter(default, args=variables).dequote()}
    return {}


def _do_arg(state: _State, value: str, meta: dict[str, str]) -> None:
    name = value.partition("=")[0].strip()
    found = _arg(value, state.buildargs, state.variables())
    if name not in found and name in meta:  # a meta ARG redeclared without a value keeps the meta value
        found = {name: meta[name]}
    state.args.update(found)


def _pairs(state: _State, value: str, what: str) -> list[tuple[str, str]]:
    """`K=V K2="V 2"` (or the old `K V` form) as the builder reads ENV and LABEL."""
    words = state.words(value)
    if not words:
        raise _Refused(f"{what} without a value (the builder's error)")
    if any("$" in word.partition("=")[0] for word in WordSplitter(value).split(dequote=False)):
        raise _Refused(f"{what} {value!r}: a variable in a name (the builder splits at '=' first)")
    if "=" not in words[0]:
        if len(words) < 2:
            raise _Refused(f"{what} {value!r} is not understood")
        rest = value.strip().split(None, 1)[1]
        return [(words[0], state.expand(rest))]
    pairs = []
    for word in words:
        key, equals, val = word.partition("=")
        if not equals or not key:
            raise _Refused(f"{what} {value!r} is not understood")
        pairs.append((key, val))
    return pairs


def _do_env(state: _State, value: str, meta: dict[str, str]) -> None:
    env = list(state.config.get("Env") or [])
    for key, val in _pairs(state, value, "ENV"):
        names = [entry.split("=", 1)[0] for entry in env]
        if key in names:  # the builder replaces a variable in place, keeping the order
            env[names.index(key)] = f"{key}={val}"
        else:
            env.append(f"{key}={val}")
    state.config["Env"] = env


def _do_label(state: _State, value: str, meta: dict[str, str]) -> None:
    state.config["Labels"] = {**(state.config.get("Labels") or {}), **dict(_pairs(state, value, "LABEL"))}


def _do_workdir(state: _State, value: str, meta: dict[str, str]) -> None:
    path = state.expand(value.strip())
    if not path:
        raise _Refused("WORKDIR without a path (the builder's error)")
    current = state.config.get("WorkingDir") or "/"
    path = posixpath.normpath(posixpath.join(current, path))
    state.config["WorkingDir"] = path
    state.steps.append(Workdir(path))


def _do_user(state: _State, value: str, meta: dict[str, str]) -> None:
    if not value.strip():
        raise _Refused("USER without a user (the builder's error)")
    state.config["User"] = state.expand(value.strip())


def _do_expose(state: _State, value: str, meta: dict[str, str]) -> None:
    ports = dict(state.config.get("ExposedPorts") or {})
    words = state.words(value)
    if not words:
        raise _Refused("EXPOSE without a port (the builder's error)")
    for word in words:
        number, _, protocol = word.partition("/")
        if not PORT.fullmatch(number) or int(number) > 65535 or protocol not in ("", "tcp", "udp", "sctp"):
            raise _Refused(f"EXPOSE {word!r} (a range, a variable or no port) needs the builder")
        ports[f"{int(number)}/{protocol or 'tcp'}"] = {}
    state.config["ExposedPorts"] = ports


def _command(state: _State, value: str) -> list[str]:
    """CMD/ENTRYPOINT: the JSON form as it is, the shell form run by /bin/sh -c (no SHELL is allowed)."""
    if not value.strip():
        raise _Refused("CMD or ENTRYPOINT without a command")
    exec_form = _exec_form(value)
    if exec_form is not None:
        return exec_form
    if state.shell:
        raise _Refused("a shell-form CMD or ENTRYPOINT on a base with its own SHELL")
    return ["/bin/sh", "-c", value.strip()]


def _exec_form(value: str) -> list[str] | None:
    """A CMD/ENTRYPOINT's JSON form (a list of strings), or None: the shell form."""
    return _json_array(value, "CMD or ENTRYPOINT")


def _json_array(value: str, what: str) -> list[str] | None:
    """The JSON form's strings, or None when `value` is not JSON (the builder's other form); refused
    when the builder errs (an element not a string) or its versions differ (text after the array)."""
    stripped = value.strip()
    if not stripped.startswith("["):
        return None
    try:
        parsed, end = json.JSONDecoder().raw_decode(stripped)
    except ValueError:
        return None
    if stripped[end:].strip():
        raise _Refused(f"{what} {value!r}: text after the JSON array (builders read it differently)")
    if not all(isinstance(p, str) for p in parsed):
        raise _Refused(f"{what} {value!r}: a JSON array of other than strings (the builder's error)")
    if any(SURROGATE.search(p) for p in parsed):  # Python keeps a lone "\\ud800", Go makes it U+FFFD
        raise _Refused(f"{what} {value!r}: a lone surrogate in the JSON array")
    return parsed


def _do_cmd(state: _State, value: str, meta: dict[str, str]) -> None:
    state.config["Cmd"] = _command(state, value)
    state.cmd_set = True


def _do_entrypoint(state: _State, value: str, meta: dict[str, str]) -> None:
    state.config["Entrypoint"] = _command(state, value)
    if not state.cmd_set:  # the builder drops the base's CMD when ENTRYPOINT changes
        state.config["Cmd"] = None


def _do_stopsignal(state: _State, value: str, meta: dict[str, str]) -> None:
    signal = state.expand(value.strip())
    number = PORT.fullmatch(signal) and int(signal) < 65
    if not number and signal.removeprefix("SIG") not in SIGNALS:
        raise _Refused(f"STOPSIGNAL {signal!r}: a signal the builder may not accept")
    state.config["StopSignal"] = signal


def _copy(add: bool):
    def handler(state: _State, value: str, meta: dict[str, str]) -> None:
        words = _copy_words(state, _copy_flags(add, value))
        if any(w.startswith("--") for w in words):
            raise _Refused(f"{'ADD' if add else 'COPY'} with flags ({words[0]}) needs the builder")
        if len(words) < 2:
            raise _Refused(f"{'ADD' if add else 'COPY'} {value!r} is not understood")
        *sources, destination = words
        state.steps.append(Copy(tuple(_source(s, add) for s in sources), _destination(state, destination, len(sources)),
                                add))
    return handler


def _copy_flags(add: bool, value: str) -> str:
    """A COPY/ADD's value without flags (which need the builder) and with no quotes in its shell form."""
    stripped = value.strip()
    if stripped.startswith("--"):
        raise _Refused(f"{'ADD' if add else 'COPY'} with flags ({stripped.split()[0]}) needs the builder")
    if not stripped.startswith("[") and any(quote in stripped for quote in "\"'"):
        raise _Refused("quotes in a COPY's shell form (the builder does not remove them)")
    return stripped


def _copy_words(state: _State, stripped: str) -> list[str]:
    if stripped.startswith("["):
        parsed = _json_array(stripped, "COPY")
        if parsed is None:
            raise _Refused(f"COPY {stripped!r} is not understood")
        if any(quote in p for p in parsed for quote in "\"'"):  # the builder removes them
            raise _Refused(f"quotes in a COPY's JSON form ({stripped!r})")
        return [state.expand(p) for p in parsed]
    return state.words(stripped)


def _source(source: str, add: bool) -> str:
    if source.startswith("<<"):
        raise _Refused(f"a here-document ({source}) needs the builder")
    if "://" in source or source.startswith("git@"):
        raise _Refused(f"a URL ({source}) needs the builder")
    if any(c in source for c in WILDCARDS):
        raise _Refused(f"a wildcard ({source}) needs the builder")
    normal = posixpath.normpath("/" + source).lstrip("/")
    return normal or "."


def _destination(state: _State, destination: str, count: int) -> str:
    if not destination:
        raise _Refused("an empty COPY destination")
    directory = destination.endswith("/") or destination in (".", "..") or destination.endswith(("/.", "/.."))
    path = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", destination))
    if count > 1 and not directory:
        raise _Refused("several sources to a destination without a trailing '/' (the builder's error)")
    return path.rstrip("/") + "/" if directory else path


_HANDLERS = {"ARG": _do_arg, "ENV": _do_env, "LABEL": _do_label, "WORKDIR": _do_workdir, "USER": _do_user,
             "EXPOSE": _do_expose, "CMD": _do_cmd, "ENTRYPOINT": _do_entrypoint, "STOPSIGNAL": _do_stopsignal,
             "COPY": _copy(False), "ADD": _copy(True)}
