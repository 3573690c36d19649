"""The topology: the typed model of `envctl.yaml`, and loading it."""
from envctl.topology.interpolation import Reference, Template
from envctl.topology.loader import DEFAULT_FILE, load_topology, parse_duration
from envctl.topology.model import (
    COMPLETED, READY, STARTED, Base, Bootstrap, Build, Dependency, Healthcheck, Mock, Mount,
    PortSpec, Probe, Service, Topology,
)

__all__ = [
    "COMPLETED", "DEFAULT_FILE", "READY", "STARTED", "Base", "Bootstrap", "Build", "Dependency",
    "Healthcheck", "Mock", "Mount", "PortSpec", "Probe", "Reference", "Service", "Template",
    "Topology", "load_topology", "parse_duration",
]
