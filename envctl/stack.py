"""A live stack, as tests and CI scripts see it: addresses, environment, logs, mocks.

The handle the pytest plugin gives tests (`envctl_stack`): one run of a `Project`, with the
questions a test asks of it. Everything else a project does (up, down, images...) is on the
`Project` (`stack.project`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from envctl.project import MockAdmin, Project, ServiceStatus

if TYPE_CHECKING:  # types only: the stack works through its project
    from envctl.backend.engine import Engine
    from envctl.runtime.state import RunRecord
    from envctl.topology import Topology


@dataclass
class Stack:
    """One running run of `topology` on `engine`."""

    topology: Topology
    engine: Engine
    run: str
    project: Project = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.project = Project(self.topology, self.engine, self.run)

    @classmethod
    def of(cls, project: Project) -> Stack:
        """The stack of `project`'s run (which must be named)."""
        assert project.run is not None, "a stack is one named run"
        return cls(project.topology, project.engine, project.run)

    @property
    def record(self) -> RunRecord:
        """The run's record (its id, and the services run on the host)."""
        return self.project.record()

    def host(self, service: str) -> str:
        """Where the host reaches the service: loopback, unless the file publishes it elsewhere."""
        return self.project.host(service)

    def port(self, service: str, container_port: int | None = None) -> int:
        """The published host port of `service`'s `container_port` (default: its first port)."""
        return self.project.port(service, container_port)

    def url(self, service: str, container_port: int | None = None) -> str:
        """http://HOST:PORT of `service`'s `container_port` (default: its first port)."""
        return self.project.url(service, container_port)

    def env(self, service: str) -> dict[str, str]:
        """`service`'s environment with references resolved as the host sees them."""
        return self.project.env(service)

    def logs(self, service: str, tail: int | str = "all") -> str:
        """`service`'s log so far (the last `tail` lines)."""
        return self.project.logs(service, tail=tail)[service]

    def exec(self, service: str, command: list[str]) -> tuple[int, str]:
        """Run `command` in the service's container: (exit code, output)."""
        running = self.project.exec(service, command)
        output = b"".join(running.output)
        return running.exit_code(), output.decode(errors="replace")

    def mock(self, name: str) -> MockAdmin:
        """A recorded-HTTP mock: what it played (`played`, `unmatched`...), what it was sent (`requests`,
        `verify`), and per-test control (`reset`, `fault`, `scenario`)."""
        return self.project.mocks(name)[0]

    def mocks(self) -> list[MockAdmin]:
        """Every running mock of the stack."""
        return self.project.mocks()

    def status(self) -> list[ServiceStatus]:
        """Each service's state, readiness (checked now) and host ports."""
        return self.project.status()

    def dead(self) -> list[ServiceStatus]:
        """Services whose containers have stopped, with exit code and OOM flag."""
        return self.project.dead()

    def strict_violations(self) -> list[str]:
        """What the strict mocks objected to so far."""
        return self.project.strict_violations()
