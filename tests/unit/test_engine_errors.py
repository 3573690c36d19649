"""The engine layer's one translation of the Docker SDK's errors.

The SDK is replaced by an object whose every call fails the same way: what is tested is
the translation, not Docker (tests/integration/test_engine_lost.py cuts a real engine).
tests/unit/test_layout.py checks that no other module imports the SDK.
"""
from __future__ import annotations

import inspect
import io
from pathlib import Path

import docker.errors
import pytest
import requests

from envctl.backend.engine import ContainerSpec, Engine, ServiceSpec
from envctl.errors import EngineUnavailable, EnvctlError

SPEC = ContainerSpec(name="n", image="i", network="net", alias="a", labels={})
SERVICE = ServiceSpec(SPEC)
CALLS = {  # every public method of Engine, with arguments that reach the SDK
    "version": (), "info": (), "image_id": ("ref",), "inspect_image": ("ref",), "images": ({},),
    "remove_image": ("ref",), "tag": ("i", "r", "t"), "pull": ("repo", "1"),
    "push": ("repo", "1"), "registry_has": ("repo:1",),
    "import_rootfs": (Path("/x.tar"), "r", "t", []), "images_named": ("debian",),
    "load_rootfs": (Path(__file__), "r", "t", {}, "linux/arm64"),  # any file: it is hashed before the SDK is asked
    "run_for_file": ("image", ["true"], "/rootfs.tar", Path("/nonexistent/rootfs.tar")),
    "build": (io.BytesIO(b""),), "run_step": ("image", ["true"]),
    "create_network": ("n", {}), "networks": (), "remove_network": ("n",), "create_volume": ("v", {}),
    "volumes": ({},), "remove_volume": ("v",), "create_container": (SPEC,), "start": ("c", "what"),
    "release": ("c",), "containers": ({},), "exited_containers": ({},), "container_state": ("c",),
    "inspect_container": ("c",), "remove_container": ("c",), "logs": ("c",), "exec": ("c", ["true"]),
    "exec_exit_code": ("e",), "load_image": ({}, "r:t", []), "image_history": ("ref",), "path_kinds": ("image",), "path_kind": ("c", "/bin/sh"), "path_header": ("c", "/bin"),
    "swarm_init": ("10.0.0.1", "10.0.0.1:2377"), "swarm_join": ("m:2377", "t", "a", "l"), "swarm_state": (),
    "nodes": (), "create_service": (SERVICE,), "scale_service": ("s", 1), "services": ({},),
    "inspect_service": ("s",), "service_tasks": ("s",), "remove_service": ("s",), "service_logs": ("s",),
    "create_swarm_file": ("secret", "n", b"x", {}), "swarm_files": ("config", {}), "remove_swarm_file": ("secret", "f"),
}
WITHOUT_SDK = {"check", "granted_files", "remove_granted_file"}  # the seam's questions the local engine answers without asking Docker
KEYWORDS = {
    "build": {"dockerfile": "Dockerfile", "tag": "t", "buildargs": {}, "log": io.StringIO(), "what": "x"},
    "run_step": {"mounts": [], "changes": [], "log": io.StringIO(), "what": "x"},
    "run_for_file": {"log": io.StringIO(), "what": "x"},
}


class FailingSDK:
    """Every call raises `error`; attributes the engine only reads are plain strings."""

    base_url = "http+docker://localhost"
    api_version = "1.41"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            raise self.error
        return call


def engine_failing_with(error: BaseException) -> Engine:
    engine = Engine.__new__(Engine)
    engine.client = engine.api = FailingSDK(error)
    return engine


def test_the_table_names_every_public_method_of_the_engine() -> None:
    public = {name for name, _ in inspect.getmembers(Engine, inspect.isfunction) if not name.startswith("_")}
    assert public == set(CALLS) | WITHOUT_SDK


@pytest.mark.parametrize("method", sorted(CALLS))
def test_a_lost_engine_is_engine_unavailable_from_every_method(method: str) -> None:
    lost = requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")
    with pytest.raises(EngineUnavailable, match="lost the Docker engine"):
        getattr(engine_failing_with(lost), method)(*CALLS[method], **KEYWORDS.get(method, {}))


@pytest.mark.parametrize("method", sorted(set(CALLS) - {"registry_has"}))  # a refusal there means "no"
def test_a_refusal_is_an_envctl_error_from_every_method(method: str) -> None:
    refused = docker.errors.APIError("500 Server Error", explanation="no space left on device")
    with pytest.raises(EnvctlError, match="no space left on device") as raised:
        getattr(engine_failing_with(refused), method)(*CALLS[method], **KEYWORDS.get(method, {}))
    assert not isinstance(raised.value, EngineUnavailable)


def test_a_bug_is_not_dressed_as_an_engine_error() -> None:
    engine = engine_failing_with(KeyError("Id"))
    with pytest.raises(KeyError):
        engine.containers({})
    with pytest.raises(KeyError):
        engine.build(io.BytesIO(b""), **KEYWORDS["build"])


def test_a_stream_cut_while_read_is_engine_unavailable() -> None:
    def broken_stream():
        yield b"first line\n"
        raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")

    engine = engine_failing_with(RuntimeError("unused"))
    engine.api.logs = lambda *args, **kwargs: broken_stream()
    stream = engine.logs("c", follow=True)
    assert next(stream) == b"first line\n"
    with pytest.raises(EngineUnavailable):
        next(stream)



class PortRaceSDK:
    """An engine whose proxy finds the port it chose taken `taken` times, then starts the container."""

    def __init__(self, taken: int, bindings: dict) -> None:
        self.taken, self.bindings, self.starts = taken, bindings, 0

    def start(self, container_id: str) -> None:
        self.starts += 1
        if self.starts <= self.taken:
            port = 32776 + self.starts
            raise docker.errors.APIError("500 Server Error", explanation=(
                "driver failed programming external connectivity on endpoint e: Error starting userland "
                f"proxy: listen tcp4 0.0.0.0:{port}: bind: address already in use"))

    def inspect_container(self, container_id: str) -> dict:
        return {"HostConfig": {"PortBindings": self.bindings}}


def _racing(taken: int, bindings: dict) -> tuple[Engine, PortRaceSDK]:
    sdk = PortRaceSDK(taken, bindings)
    engine = Engine.__new__(Engine)
    engine.client = engine.api = sdk  # type: ignore[assignment]
    return engine, sdk


def test_a_port_the_engine_chose_and_found_taken_is_chosen_again() -> None:
    engine, sdk = _racing(2, {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}]})
    engine.start("c", "web")
    assert sdk.starts == 3


def test_a_port_the_topology_names_is_not_retried_and_names_the_fix() -> None:
    engine, sdk = _racing(1, {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32777"}]})
    with pytest.raises(EnvctlError) as caught:
        engine.start("c", "web")
    assert sdk.starts == 1 and "free that host port" in (caught.value.fix or "")


def test_the_engine_is_not_asked_forever() -> None:
    engine, sdk = _racing(10, {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}]})
    with pytest.raises(EnvctlError, match="address already in use"):
        engine.start("c", "web")
    assert sdk.starts == 4
