"""Drawing the topology: dependencies solid, references dashed, bases dotted."""
from envctl.observation.drawing import to_dot, to_mermaid
from envctl.topology import load_topology


def test_dot_and_mermaid_show_every_kind_of_edge(write_topology, tmp_path) -> None:
    (tmp_path / "cassettes").mkdir()
    (tmp_path / "py.Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    path = write_topology(
        """
        bases:
          os: {bootstrap: {distro: debian, suite: bookworm}}
          py: {from: os, dockerfile: py.Dockerfile}
        services:
          db: {base: os, ports: ["5432"]}
          api:
            base: os
            depends_on: [db]
            ports: ["8000"]
            environment: {PAY: "${pay.url}", DB: "${db.host}"}
        mocks:
          pay: {cassettes: cassettes, base: os}
        """
    )
    topology = load_topology(path, environ={})
    dot = to_dot(topology)
    assert '"api" -> "db";' in dot
    assert '"api" -> "pay" [style=dashed];' in dot
    assert '"api" [label="api\\non os"];' in dot
    assert '"pay" [shape=component' in dot
    assert '"base:py" -> "base:os" [style=dotted' in dot
    mermaid = to_mermaid(topology)
    assert mermaid.startswith("flowchart LR") and "api --> db" in mermaid and "api -.-> pay" in mermaid
