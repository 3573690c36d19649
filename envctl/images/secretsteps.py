"""Building a Dockerfile with secret steps, as `secretbuild.plan` cuts it (see there for why).

The parts between secret steps are ordinary builds. Each secret step runs in a throw-away
container, its secrets bind-mounted from a private host directory removed right after, and
is committed without them.
"""
from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from envctl.backend.engine import Engine, Mount
from envctl.errors import EnvctlError
from envctl.images import secretbuild
from envctl.images.buildcontext import BuildContext


def build_in_parts(engine: Engine, context: BuildContext, plan: secretbuild.Plan, *, buildargs: dict[str, str],
                   values: dict[str, str], ssh: dict[str, str], ref: str, label: str, log: IO[str], what: str,
                   cancel: threading.Event) -> str:
    """Build `plan` as `ref` (`label` on the last layer); the image id. `values` are the secrets by id."""
    repository, tag = ref.split(":")

    def build_text(text: str, final: bool) -> str:
        archive, dockerfile = context.archive((label,) if final else (), dockerfile_text=text)
        with archive:
            return engine.build(archive, dockerfile=dockerfile, tag=ref if final else None,
                                buildargs=buildargs, log=log, what=what, cancel=cancel)

    image = build_text("\n".join(plan.head) + "\n", final=False)
    for index, (step, after) in enumerate(plan.parts):
        final_step = index == len(plan.parts) - 1 and not after
        log.write(f"Secret step (Dockerfile line {step.line}), in a throw-away container\n")
        shell = (engine.inspect_image(image).get("Config") or {}).get("Shell") or ["/bin/sh", "-c"]
        command = secretbuild.step_command(step, shell, secretbuild.declared_args(plan.args, buildargs))
        with secret_mounts(step, values, ssh) as mounts:
            image = engine.run_step(
                image, command, mounts=mounts, changes=[label] if final_step else [], log=log,
                what=f"{what} at line {step.line}", cancel=cancel,
                repository=repository if final_step else None, tag=tag if final_step else None)
        if after:
            final = index == len(plan.parts) - 1
            image = build_text("\n".join([f"FROM {image}", *plan.args, *after]) + "\n", final=final)
    return image


def ssh_agents(entries: tuple[str, ...], where: str) -> dict[str, str]:
    """build.ssh entries -> {id: agent socket path}; 'default' is the host's $SSH_AUTH_SOCK."""
    agents = {}
    for entry in entries:
        name, _, path = entry.partition("=")
        if not path:
            path = os.environ.get("SSH_AUTH_SOCK", "")
            if not path:
                raise EnvctlError(f"{where}.build.ssh forwards the SSH agent '{name}', and SSH_AUTH_SOCK is not set",
                                  fix="start an agent ('eval $(ssh-agent)', then 'ssh-add'), or write ID=/path/to/agent.sock")
        if not Path(path).exists():
            raise EnvctlError(f"{where}.build.ssh: the agent socket {path} does not exist", fix="check the agent is running")
        agents[name] = path
    return agents


@contextmanager
def secret_mounts(step: secretbuild.SecretStep, values: dict[str, str], ssh: dict[str, str]) -> Iterator[list[Mount]]:
    """Bind mounts for one secret step, from a private directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="envctl-secrets-") as tmp:
        directory = Path(tmp)
        directory.chmod(0o711)  # only the mounts' own files can be reached
        mounts = [Mount(secretbuild.SECRETS_DIR, str(directory), type="bind", read_only=True)]
        for mount in step.mounts:
            if mount.kind == "secret":
                path = directory / mount.id
                path.write_text(values[mount.id])
                path.chmod(0o444)  # the step may run as a non-root USER
                if mount.target:
                    mounts.append(Mount(mount.target, str(path), type="bind", read_only=True))
            elif mount.id in ssh:
                (directory / Path(secretbuild.SSH_SOCKET).name).touch()  # the mount point, in a read-only mount
                mounts.append(Mount(secretbuild.SSH_SOCKET, ssh[mount.id], type="bind"))
        yield mounts
