"""Plain YAML scalars read as Compose reads them: YAML 1.2's core schema, not PyYAML's 1.1.

Compose (go-yaml v3) reads ``off``, ``yes`` and ``no`` as strings, and ``22:22`` as a string,
where YAML 1.1 gives ``False``, ``True`` and the base-60 number 1342. Integers are decimal or
``0x``/``0o``/``0b`` (``0777`` too, which go-yaml still reads as octal), with ``_``
separators; dates stay strings (nothing in a topology is a timestamp).
"""
from __future__ import annotations

import re

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_LEGACY_OCTAL = re.compile(r"^[-+]?0[0-7]+$")


class Yaml12Resolver(Resolver):
    """Only YAML 1.2 core-schema booleans, integers and floats; everything else a string."""


Yaml12Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                           "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}
Yaml12Resolver.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
Yaml12Resolver.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
Yaml12Resolver.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))


class Yaml12Constructor(SafeConstructor):
    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        if _LEGACY_OCTAL.match(text):
            return int(text, 8)
        return int(text, 0) if not text.lstrip("+-").isdigit() else int(text)

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        return str(self.construct_scalar(node)).lower() == "true"


def _merge_directive(constructor: SafeConstructor, node: yaml.Node):
    """Compose's `!reset` and `!override` on a plain value: the value itself (`!reset` one
    means nothing); what they do to merging is `envctl.topology.files`' business."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    return None if node.tag == "!reset" else constructor.construct_scalar(node)


Yaml12Constructor.add_constructor("!reset", _merge_directive)
Yaml12Constructor.add_constructor("!override", _merge_directive)
Yaml12Constructor.add_constructor("tag:yaml.org,2002:int", Yaml12Constructor.construct_yaml_int)
Yaml12Constructor.add_constructor("tag:yaml.org,2002:bool", Yaml12Constructor.construct_yaml_bool)


class Yaml12Loader(Reader, Scanner, Parser, Composer, Yaml12Constructor, Yaml12Resolver):
    def __init__(self, stream) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        Yaml12Constructor.__init__(self)
        Yaml12Resolver.__init__(self)
