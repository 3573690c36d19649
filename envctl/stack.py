"""A live stack, as tests and CI scripts see it: addresses, environment, logs, mocks.

A thin handle over `envctl.run` for the pytest plugin and `envctl ci`.
"""
from __future__ import annotations

from dataclasses import dataclass

from envctl import engine as eng
from envctl import run as run_api
from envctl.engine import Engine
from envctl.mocks.admin import MockAdmin
from envctl.state import RunRecord
from envctl.topology import Topology


@dataclass
class Stack:
    topology: Topology
    engine: Engine
    run: str

    @property
    def record(self) -> RunRecord:
        return run_api.current_run(self.topology, self.run)

    def host(self, service: str) -> str:
        """Where the host reaches the service: loopback, unless the file publishes it elsewhere."""
        self.port(service)  # a clear error for an unknown or stopped service
        return self.topology.reach(service)

    def port(self, service: str, container_port: int | None = None) -> int:
        """The published host port of `service`'s `container_port` (default: its first port)."""
        return run_api.host_port(self.engine, self.topology, self.record, service, container_port)

    def url(self, service: str, container_port: int | None = None) -> str:
        port = self.port(service, container_port)
        return f"http://{self.topology.reach(service, container_port)}:{port}"

    def env(self, service: str) -> dict[str, str]:
        """`service`'s environment with references resolved as the host sees them."""
        return run_api.host_environment(self.engine, self.topology, self.record, service)

    def logs(self, service: str, tail: int | str = "all") -> str:
        return run_api.logs(self.engine, self.topology, self.record, service, tail=tail)[service]

    def exec(self, service: str, command: list[str]) -> tuple[int, str]:
        """Run `command` in the service's container: (exit code, output)."""
        _, (exec_id, stream) = run_api.exec_in(self.engine, self.topology, self.record, service, command)
        output = b"".join(stream)
        return self.engine.exec_exit_code(exec_id) or 0, output.decode(errors="replace")

    def mock(self, name: str) -> MockAdmin:
        """A recorded-HTTP mock: what it played (`played`, `unmatched`...), what it was sent (`requests`,
        `verify`), and per-test control (`reset`, `fault`, `scenario`)."""
        return run_api.mock_admins(self.engine, self.topology, self.record, name)[0]

    def mocks(self) -> list[MockAdmin]:
        """Every running mock of the stack."""
        return run_api.mock_admins(self.engine, self.topology, self.record)

    def status(self) -> list[run_api.ServiceStatus]:
        return run_api.status(self.engine, self.topology, self.record)

    def dead(self) -> list[run_api.ServiceStatus]:
        """Services whose containers have stopped, with exit code and OOM flag."""
        rows = []
        for container in self.engine.exited_containers(eng.run_labels(self.topology.name, self.run)):
            rows.append(run_api.ServiceStatus(container.service, container.status, False,
                                              f"exited with code {container.exit_code}"
                                              + (" (OOM-killed)" if container.oom_killed else ""),
                                              container.ports, container.exit_code, container.oom_killed))
        return rows

    def strict_violations(self) -> list[str]:
        out: list[str] = []
        for report in run_api.mock_reports(self.engine, self.topology, self.record):
            if self.topology.mocks[report.name].strict:
                out += report.strict_violations()
        return out
