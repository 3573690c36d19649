"""The typed readers: a string, number, list, mapping, path or duration at a key path of the raw document.

Each reader returns the value in the model's type, or None after recording a Problem (file, line
and key path) on the document, so loading goes on and `envctl config` shows every problem at once.
The section parsers (`envctl.topology.sections`, `compose_keys`) are written with these.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
from pathlib import Path
from typing import Any, Callable

from envctl.durations import EXAMPLES as DURATION_EXAMPLES
from envctl.durations import DurationError, parse_duration
from envctl.topology.dotenv import DotenvError, parse_dotenv
from envctl.topology.files import Document
from envctl.topology.interpolation import InterpolationError, Interpolator
from envctl.topology.source import KeyPath, format_key_path

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Reader:
    """Reads typed values out of one raw document, recording its problems on it."""

    def __init__(self, source: Document, interpolator: Interpolator) -> None:
        self.source = source
        self.interp = interpolator
        self.included_interps: dict[tuple[Path, ...], Interpolator] = {}
        self.notes: list[str] = []  # what loading changed or ignored, for `envctl config`

    def problem(self, path: KeyPath, message: str, fix: str | None = None) -> None:
        self.source.problem(path, message, fix)

    def note(self, path: KeyPath, message: str) -> None:
        self.notes.append(f"{format_key_path(path)}: {message}")

    def mapping(self, value: Any, path: KeyPath, allowed: tuple[str, ...], what: str) -> dict | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"{what} must be a mapping, not {kind_of(value)}", f"write {what} as 'key: value' lines")
            return None
        for key in value:
            if key.startswith("x-"):
                continue  # Compose extension fields, for anchors
            if key not in allowed:
                self.problem(path + (key,), f"unknown key '{key}' in {what}", key_fix(key, allowed))
        return {k: v for k, v in value.items() if k in allowed}

    def string(self, value: Any, path: KeyPath, *, template: bool = False) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            self.problem(path, f"expected a string, not {kind_of(value)}", "write a string (quote it if needed)")
            return None
        try:
            interp = self.interp_at(path)
            return interp.template(str(value)) if template else interp.plain(str(value))
        except InterpolationError as exc:
            self.problem(path, str(exc), exc.fix)
            return None

    def interp_at(self, path: KeyPath) -> Interpolator:
        """The variables for the value at `path`: the project's, and for a key from an included
        file, its own env files' for the names the project leaves unset (as Compose's include)."""
        origin = self.source.origin(path)
        env_files = origin.env_files if origin else ()
        if not env_files:
            return self.interp
        if env_files not in self.included_interps:
            variables = dict(self.interp.variables)
            for file in env_files:
                try:
                    found = parse_dotenv(file.read_text(encoding="utf-8"), variables.get)
                except (OSError, UnicodeDecodeError, DotenvError) as exc:
                    self.problem(path, f"cannot read the included file's env file {file}: {exc}", "fix or remove it")
                    found = {}
                for key, value in found.items():
                    variables.setdefault(key, value)
            self.included_interps[env_files] = Interpolator(variables, unset=self.interp.unset)
        return self.included_interps[env_files]

    def typed(self, value: Any, path: KeyPath, cast: Callable[[str], Any]) -> Any:
        """A typed field's value: a string is interpolated, then cast as Compose casts it.
        _FAILED when interpolation failed (already reported)."""
        if not isinstance(value, str):
            return value
        text = self.string(value, path)
        return _FAILED if text is None else cast(text)

    def boolean(self, value: Any, path: KeyPath) -> bool | None:
        """true/false, or a string Compose reads as one (yes/no, on/off)."""
        value = self.typed(value, path, lambda text: _BOOLEAN_WORDS.get(text.lower(), text))
        if value is not _FAILED and not isinstance(value, bool):
            self.problem(path, f"expected true or false, not {value!r}" if isinstance(value, str)
                         else f"expected true or false, not {kind_of(value)}", "write true or false")
        return value if isinstance(value, bool) else None

    def integer(self, value: Any, path: KeyPath) -> int | None:
        value = self.typed(value, path, lambda text: int(text) if re.fullmatch(r"\s*[-+]?\d+\s*", text) else text)
        if value is not _FAILED and (isinstance(value, bool) or not isinstance(value, int)):
            self.problem(path, f"{value!r} is not a whole number", "write a whole number, e.g. 3")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def byte_size(self, value: Any, path: KeyPath) -> int | None:
        """Compose's sizes: 512m, 1g, 64k, or a plain number of bytes."""
        match = re.fullmatch(r"(\d+)\s*([bkmg]?)b?", str(value).strip().lower()) if isinstance(value, (str, int)) else None
        if match is None or isinstance(value, bool):
            self.problem(path, f"{value!r} is not a size", "write e.g. 256m or 1g")
            return None
        return int(match.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2)]

    def duration(self, value: Any, path: KeyPath) -> float | None:
        if isinstance(value, str):
            value = self.string(value, path)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except DurationError:
            self.problem(path, f"{value!r} is not a duration", f"write {DURATION_EXAMPLES}")
            return None

    def port_number(self, value: Any, path: KeyPath) -> int | None:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.problem(path, f"{value!r} is not a port number", "write a number from 1 to 65535")
            return None
        return value

    def string_list(self, value: Any, path: KeyPath, what: str) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problem(path, f"{what} must be a list, not {kind_of(value)}", f"write {what} as a YAML list")
            return None
        items = [self.string(item, path + (i,)) for i, item in enumerate(value)]
        return None if any(i is None for i in items) else tuple(items)

    def command(self, value: Any, path: KeyPath) -> tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            text = self.string(value, path)
            if text is None:
                return None
            try:
                return tuple(shlex.split(text))
            except ValueError as exc:
                self.problem(path, f"cannot split this command: {exc}", "balance the quotes, or write a list")
                return None
        return self.string_list(value, path, "a command")

    def name_of(self, name: Any, path: KeyPath, what: str) -> bool:
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.problem(path, f"{name!r} is not a valid {what} name",
                         "use lower-case letters, digits, '-' and '_', starting with a letter or digit")
            return False
        return True

    def relative_path(self, value: Any, path: KeyPath) -> Path | None:
        text = self.string(value, path)
        if text is None:
            return None
        return self.host_path(text, path)

    def host_path(self, text: str, path: KeyPath) -> Path | None:
        """`text` as a path on the host: relative to the topology's directory, `~` expanded."""
        if "\x00" in text:  # the OS would refuse it with a ValueError
            self.problem(path, f"{text!r} is not a usable path: it contains a NUL character",
                         "remove the NUL character")
            return None
        return (self.source.directory(path) / os.path.expanduser(text)).resolve()

    def key_values(self, raw: Any, path: KeyPath, what: str) -> list[tuple[str, Any]] | None:
        """A Compose map-or-list (``KEY: value`` or ``- KEY=value``)."""
        if isinstance(raw, dict):
            return list(raw.items())
        if isinstance(raw, list):
            pairs = []
            for i, item in enumerate(raw):
                if not isinstance(item, str):
                    self.problem(path + (i,), f"expected 'KEY=value', not {kind_of(item)}", "write 'KEY=value'")
                    return None
                key, sep, value = item.partition("=")
                pairs.append((key, value if sep else None))
            return pairs
        self.problem(path, f"{what} must be a mapping or a list, not {kind_of(raw)}", "write 'KEY: value' lines")
        return None

    def args(self, raw: Any, path: KeyPath) -> tuple[tuple[str, str], ...] | None:
        """Build args: a map-or-list, each value a string (one written without a value is empty)."""
        pairs = self.key_values(raw, path, "args")
        if pairs is None:
            return None
        out = []
        for key, value in pairs:
            text = self.string(value if value is not None else "", path + (key,))
            if text is None:
                return None
            out.append((key, text))
        return tuple(out)


_FAILED = object()  # a typed field whose interpolation failed (the problem is recorded)
# How Compose casts an interpolated string in a boolean field.
_BOOLEAN_WORDS = {"y": True, "yes": True, "true": True, "on": True,
                  "n": False, "no": False, "false": False, "off": False}


def kind_of(value: Any) -> str:
    """What a YAML value is, in the words a problem uses ("a mapping", "a list", ...)."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def key_fix(key: str, allowed: tuple[str, ...], noun: str = "key") -> str:
    """The fix for an unknown name: the closest known one, or the list of them."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not allowed:
        return f"there is no {noun} of that name; define it first"
    return f"use one of the known {noun}s: " + ", ".join(allowed)
