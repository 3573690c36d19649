"""The topology: the typed model of `envctl.yaml`, and loading it."""
from envctl.durations import parse_duration
from envctl.topology.files import DEFAULT_FILE
from envctl.topology.interpolation import Reference, Template
from envctl.topology.loader import load_topology
from envctl.topology.model import (
    COMPLETED, READY, STARTED, Base, Bootstrap, Build, Dependency, Healthcheck, Mock, Mount,
    PortSpec, Probe, Service, Topology,
)

__all__ = [
    "COMPLETED", "DEFAULT_FILE", "READY", "STARTED", "Base", "Bootstrap", "Build", "Dependency",
    "Healthcheck", "Mock", "Mount", "PortSpec", "Probe", "Reference", "Service", "Template",
    "Topology", "load_topology", "parse_duration",
]
