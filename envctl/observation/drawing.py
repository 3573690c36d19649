"""Drawing the topology: Graphviz DOT (SVG through `dot` when installed) and Mermaid text.

Services point at what they depend on (solid) and at what they only reference (dashed);
a service's base is named in its box (an arrow from every service to its base would cross
the whole picture), bases point at the base they build on (dotted).
"""
from __future__ import annotations

import shutil
import subprocess

from envctl.errors import EnvctlError
from envctl.topology import Topology
from envctl.topology.interpolation import references


def _edges(topology: Topology) -> list[tuple[str, str, str]]:
    """(from, to, kind) with kind "depends", "references" or "builds-on"."""
    edges = []
    for name, service in topology.services.items():
        deps = [d.service for d in service.depends_on]
        edges += [(name, dep, "depends") for dep in deps]
        referenced = {ref.target for _, template in service.environment for ref in references(template)}
        edges += [(name, target, "references") for target in sorted(referenced - set(deps) - {name})]
    for name, base in topology.bases.items():
        if base.parent:
            edges.append((f"base:{name}", f"base:{base.parent}", "builds-on"))
    return edges


def to_dot(topology: Topology) -> str:
    lines = [f'digraph "{topology.name}" {{', '  rankdir=LR; bgcolor="white";',
             '  node [fontname="Helvetica", fontsize=11, style="rounded,filled", shape=box, fillcolor="#dbeafe", color="#3e8ed0"];',
             '  edge [color="#52606d", arrowsize=0.7];']
    for name, service in topology.services.items():
        on = f"\\non {service.base}" if service.base else (f"\\n{service.image}" if service.image else "")
        lines.append(f'  "{name}" [label="{name}{on}"];')
    for name in topology.mocks:
        lines.append(f'  "{name}" [shape=component, style="filled,dashed", fillcolor="#fef3c7", color="#b7791f", '
                     f'label="{name}\\n(recorded HTTP)"];')
    for name, base in topology.bases.items():
        source = "bootstrap" if base.bootstrap else ("image" if base.image else "dockerfile")
        lines.append(f'  "base:{name}" [shape=folder, fillcolor="#e4e7eb", color="#7b8794", '
                     f'label="base {name}\\n({source})"];')
    style = {"depends": "", "references": ' [style=dashed]', "builds-on": ' [style=dotted, color="#9aa5b1", arrowhead=empty]'}
    for source, target, kind in _edges(topology):
        lines.append(f'  "{source}" -> "{target}"{style[kind]};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(topology: Topology) -> str:
    def node(name: str) -> str:
        return name.replace(":", "_").replace("-", "_")

    lines = ["flowchart LR"]
    for name, service in topology.services.items():
        on = f"<br/><small>on {service.base}</small>" if service.base else ""
        lines.append(f'  {node(name)}["{name}{on}"]')
    for name in topology.mocks:
        lines.append(f'  {node(name)}[["{name} (recorded HTTP)"]]')
    for name in topology.bases:
        lines.append(f'  {node("base:" + name)}[("base {name}")]')
    arrow = {"depends": "-->", "references": "-.->", "builds-on": "-.-o"}
    for source, target, kind in _edges(topology):
        lines.append(f"  {node(source)} {arrow[kind]} {node(target)}")
    return "\n".join(lines) + "\n"


def dot_available() -> bool:
    return shutil.which("dot") is not None


def to_svg(topology: Topology) -> str:
    if not dot_available():
        raise EnvctlError("drawing SVG needs Graphviz's 'dot', which is not installed",
                          fix="install it ('apt-get install graphviz'), or use --format dot or --format mermaid")
    result = subprocess.run(["dot", "-Tsvg"], input=to_dot(topology), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise EnvctlError(f"dot failed: {result.stderr.strip()[:300]}")
    return result.stdout
