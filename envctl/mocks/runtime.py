"""How a mock runs: as a service of the run, built on the project's base, serving on MOCK_PORT."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import replace

from envctl.topology import Mock, Mount, PortSpec, Probe, Service, Topology
from envctl.topology.model import MOCK_PORT

MOUNT_POINT = "/cassettes"


def mock_base(topology: Topology, mock: Mock) -> str | None:
    if mock.base:
        return mock.base
    return next(iter(topology.bases)) if len(topology.bases) == 1 else None


RECORD_MODES = ("replay", "record", "record_missing")


def as_service(topology: Topology, mock: Mock, image: str, mode: str = "replay") -> Service:
    """The container a mock runs as, in `mode` (one of RECORD_MODES).

    It runs as the invoking user, so recordings are theirs.
    """
    assert mode in RECORD_MODES, mode
    directory = mock.cassettes if mock.cassettes.is_dir() else mock.cassettes.parent
    inside = MOUNT_POINT if mock.cassettes.is_dir() else f"{MOUNT_POINT}/{mock.cassettes.name}"
    config = {
        "name": mock.name, "mode": mode, "port": MOCK_PORT,
        "cassettes": inside, "upstream": mock.upstream,
        "record_file": f"{MOUNT_POINT}/{mock.name}.yaml" if mock.cassettes.is_dir() else inside,
        "match_on": list(mock.match_on), "allow_repeats": mock.allow_repeats,
        "scrub": {"headers": list(mock.scrub.headers), "query": list(mock.scrub.query),
                  "body_json_keys": list(mock.scrub.body_json_keys)},
        "volatile": {"json": list(mock.volatile.json_paths), "headers": list(mock.volatile.headers),
                     "query": list(mock.volatile.query), "form": list(mock.volatile.form),
                     "recorded_as": mock.volatile.recorded_as},
        "fault": {"latency_ms": mock.fault.latency_ms, "error_rate": mock.fault.error_rate, "seed": mock.fault.seed},
        "scenarios": {name: [dataclasses.asdict(step) for step in steps] for name, steps in mock.scenarios},
        "replay_latency": mock.replay_latency,
    }
    return Service(
        name=mock.name, line=mock.line, image=image,
        command=("python3", "-m", "envctl_mock.server"), working_dir="/opt/envctl",
        environment=(("ENVCTL_MOCK_CONFIG", (json.dumps(config, sort_keys=True),)),),
        ports=(PortSpec(MOCK_PORT),),
        probe=Probe(kind="http", port=MOCK_PORT, path="/__envctl/health", timeout=60.0, interval=0.25),
        volumes=(Mount(kind="bind", target=MOUNT_POINT, source=str(directory), read_only=mode == "replay"),),
        user=recording_user(),
        stop_grace_period=1.0,
    )


def recording_user() -> str | None:
    """Who the mock runs as, so recordings in the bind mount belong to the user who ran `up`.

    On Linux that is the host's uid:gid (root in the container would leave root-owned cassettes
    in the checkout). Docker Desktop (macOS, Windows) maps a bind mount's files to the host user
    whatever the container's user is, and Windows has no uid: the image's user is kept there."""
    if not hasattr(os, "getuid"):
        return None
    return f"{os.getuid()}:{os.getgid()}"


def with_mocks(topology: Topology, images: dict[str, str] | None = None,
               modes: dict[str, str] | None = None) -> Topology:
    """The topology as the engine sees it: every mock folded in as a service (replaying unless `modes` says)."""
    images, modes = images or {}, modes or {}
    services = dict(topology.services)
    for name, mock in topology.mocks.items():
        services[name] = as_service(topology, mock, images.get(name, ""), modes.get(name, "replay"))
    return replace(topology, services=services)
