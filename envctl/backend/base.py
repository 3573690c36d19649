"""The backend seam: what running a stack needs from wherever its containers run.

`up` (applying a plan), readiness, status, logs, exec and teardown ask only this of the
place they run on. The local Docker engine (`envctl.backend.engine.Engine`) is the first
implementation; a cluster backend (Docker Swarm) is a second one, not a fork of the runtime.
Everything crossing the seam is envctl's own plain data (`ContainerSpec`, `ContainerState`,
dicts of the engine's JSON), never a Docker SDK object: the SDK stays inside the engine layer.

Building images is not a backend's business: images are made on the local engine and, for
a backend elsewhere, pushed to a registry it pulls from.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from envctl.backend.engine import ContainerSpec, ContainerState, Engine
from envctl.topology.model import Topology


@runtime_checkable
class Backend(Protocol):
    """Where a run's containers, networks and volumes live; found again by their labels."""

    # -- what it is -------------------------------------------------------------------
    @property
    def builder(self) -> Engine:
        """The local engine images are built on (a cluster pulls them from a registry)."""

    @property
    def holds_at_gate(self) -> bool:
        """Whether a container can be held at the start gate (its stdin kept open, then released)."""

    @property
    def notes(self) -> Sequence[str]:
        """How this backend runs services otherwise than the topology says, for `up` to tell (its warnings)."""

    def check(self, topology: Topology, services: list[str]) -> None:
        """Raise `TopologyError` for what of `services` this backend cannot honour, before anything is created."""

    @property
    def execs_healthchecks(self) -> bool:
        """Whether readiness may run a container's healthcheck itself (by exec) rather than wait for the backend's verdict."""

    # -- what exists ------------------------------------------------------------------
    def containers(self, labels: dict[str, str]) -> list[ContainerState]:
        """Every container (running or not) carrying all of `labels`."""

    def exited_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        """Those of `labels` that have stopped (cheap when none has)."""

    def container_state(self, container_id: str) -> ContainerState | None:
        """One container as it is now; None once it is gone."""

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        """The backend's whole record of a container (for diagnostics bundles)."""

    def inspect_image(self, ref: str) -> dict[str, Any]:
        """An image's record; its "Config" tells the start gate what the image would run."""

    def networks(self, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Networks carrying all of `labels`."""

    def volumes(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Volumes carrying all of `labels`."""

    def granted_files(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Secrets and configs the backend keeps for services, carrying all of `labels`: each a dict of
        "Kind" ("secret", "config"), "ID", "Name" and "Labels" (the local engine binds files instead: none)."""

    # -- making and starting ---------------------------------------------------------
    def create_network(self, name: str, labels: dict[str, str], *, driver: str | None = None,
                       options: dict[str, str] | None = None, internal: bool = False,
                       attachable: bool | None = None) -> str:
        """Create (or adopt, when it carries the same labels) a network; its id (`attachable`: an overlay's)."""

    def create_volume(self, name: str, labels: dict[str, str], *, driver: str | None = None,
                      options: dict[str, str] | None = None) -> None:
        """Create a named volume."""

    def create_container(self, spec: ContainerSpec) -> str:
        """Create a container from `spec`, joined to its networks, not started; its id."""

    def start(self, container_id: str, what: str) -> None:
        """Start a created container (`what` names it in errors)."""

    def path_kind(self, container_id: str, path: str, what: str = "the container") -> str | None:
        """"dir", "file", "link" or None (missing) at `path` in a created container."""

    def release(self, container_id: str, word: bytes = b"go\n") -> None:
        """Let a container held at the start gate run its process."""

    # -- using ---------------------------------------------------------------------------
    def exec(self, container_id: str, command: list[str], *, stream: bool = False) -> tuple[int | None, Any]:
        """Run `command` in a running container: its exit code and output (a stream when asked)."""

    def exec_exit_code(self, exec_id: str) -> int | None:
        """The exit code of a streamed exec, once it finished."""

    def logs(self, container_id: str, *, tail: int | str = "all", follow: bool = False,
             timestamps: bool = False) -> bytes | Iterator[bytes]:
        """A container's output (stdout and stderr), or a stream of it."""

    # -- removing ----------------------------------------------------------------------
    def remove_container(self, container_id: str, grace: int = 2) -> None:
        """Stop (SIGTERM, then SIGKILL after `grace` seconds) and remove, anonymous volumes too."""

    def remove_network(self, network_id: str) -> None:
        """Remove a network."""

    def remove_volume(self, name: str) -> None:
        """Remove a volume."""

    def remove_granted_file(self, kind: str, file_id: str) -> None:
        """Remove a secret or config (`kind`) once no service uses it."""
