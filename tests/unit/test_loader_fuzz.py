"""Property: whatever the topology file holds, loading it gives a topology or a TopologyError, never a crash.

Three sources of bad input: arbitrary text, random documents built from envctl's own keys
(so validation runs deep), and a valid topology with one value replaced by junk.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envctl.topology import load_topology
from envctl.topology.loader import TOP_KEYS
from envctl.topology.sections.bases import BASE_KEYS, BOOTSTRAP_KEYS
from envctl.topology.sections.health import HEALTHCHECK_KEYS, PROBE_KEYS
from envctl.topology.sections.mocks import MOCK_KEYS
from envctl.topology.sections.project import SECRET_KEYS
from envctl.topology.sections.services import BUILD_KEYS, SERVICE_KEYS
from envctl.errors import TopologyError

STACK = Path(__file__).parents[1] / "integration" / "stack"
KEYS = sorted({*TOP_KEYS, *BASE_KEYS, *BOOTSTRAP_KEYS, *BUILD_KEYS, *HEALTHCHECK_KEYS, *MOCK_KEYS, *PROBE_KEYS,
               *SECRET_KEYS, *SERVICE_KEYS, "store", "api", "backend", "os", "condition", "service_healthy",
               "target", "source", "type"})
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "250")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(KEYS),
    st.sampled_from(["${store.url}", "${api.port.8000}", "${X:?missing}", "$$", "${", "8000:8000", "1s", "./store",
                     "/var/run/docker.sock:/x", "store-data:/data", "9999999:80", "-1", "0"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5)),
    max_leaves=40,
)


def load_text(text: str) -> None:
    """Load `text` as envctl.yaml beside a copy of the test stack's build contexts."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("store", "backend", "api"):
            shutil.copytree(STACK / name, root / name)
        (root / "envctl.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            load_topology(root / "envctl.yaml", environ={})
        except TopologyError as exc:
            assert str(exc).strip(), "an error must say something"


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(text):
    load_text(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), documents, max_size=6))
def test_random_documents_of_envctl_keys(document):
    load_text(yaml.safe_dump(document, allow_unicode=True))


VALID = yaml.safe_load((STACK / "envctl.yaml").read_text())


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


PATHS = [p for p in _paths(VALID) if p]


@FUZZ
@given(st.sampled_from(PATHS), documents)
def test_a_valid_topology_with_one_value_replaced(path, junk):
    document = copy.deepcopy(VALID)
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = junk
    load_text(yaml.safe_dump(document, allow_unicode=True))
