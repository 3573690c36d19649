"""The start gate: a dependent's container starts early, and its process waits for the word.

Starting a container is most of what `up` waits for: the engine spends a fifth of a second
or more of CPU on each (namespaces, mounts, the shim, the network). A start in dependency
order leaves the engine idle while each level gets ready, and then pays for the next
level's starts on the critical path; the slower the services are to get ready, the more
that costs.

So a service that waits for others is created with a small shell in front of its own
command. `up` starts its container at once, in the background; the shell waits on stdin.
Once the dependencies are ready, `up` attaches and writes "go", and the shell execs the
service's own entrypoint and command: the same PID, environment, user and signals, and
stdin at /dev/null as without the gate. The shell also leaves a mark in /tmp, so a
`docker restart` of the container does not hold it again.

A service is not held when none of its dependencies is being started, when a Docker
healthcheck (its own or its image's) would run against the waiting shell, or when its
image has no /bin/sh. The last is found out when the container fails to start or its init
cannot run the shell; `up` then recreates it without the gate and starts it the plain way.
`ENVCTL_START_GATE=0` turns the gate off altogether.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from envctl.backend.engine import ContainerSpec
from envctl.switches import switched_on

HELD_LABEL = "envctl.held"  # on containers created behind the gate
SWITCH = "ENVCTL_START_GATE"  # "0" turns the gate off: every service starts the plain way
SHELL = "/bin/sh"
RELEASED_MARK = "/tmp/.envctl-released"
# Signals are trapped while waiting: the shell may be PID 1, which ignores untrapped ones,
# and `down` must not wait out a grace period for a service that never ran. `exec` resets
# the traps, so the service gets its signals as usual.
SCRIPT = (
    f'if [ ! -e {RELEASED_MARK} ]; then '
    'trap "exit 143" TERM; trap "exit 130" INT; '
    'IFS= read -r word; '
    'if [ "$word" != go ]; then echo "envctl: not released (its run ended first)" >&2; exit 125; fi; '
    f'true 2>/dev/null >{RELEASED_MARK}; '
    'fi; exec "$@" </dev/null'
)


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return switched_on(SWITCH, environ)


def held_spec(spec: ContainerSpec, image_config: dict[str, Any]) -> ContainerSpec | None:
    """`spec` with the gate in front of its command, or None when it should not be held."""
    if spec.healthcheck is not None or _has_healthcheck(image_config):
        return None
    # What the engine would run, by its rules: an entrypoint of the service's own drops the
    # image's command; an empty one only drops the image's entrypoint.
    if spec.entrypoint:
        argv = list(spec.entrypoint) + list(spec.command or [])
    else:
        entrypoint = (image_config.get("Entrypoint") or []) if spec.entrypoint is None else []
        argv = list(entrypoint) + list(spec.command or image_config.get("Cmd") or [])
    if not argv:
        return None  # nothing to run: let the engine say so as it would without the gate
    return dataclasses.replace(
        spec, entrypoint=[SHELL, "-c", SCRIPT, "envctl-gate"], command=argv, open_stdin=True,
        labels={**spec.labels, HELD_LABEL: "true"},
    )


def _has_healthcheck(image_config: dict[str, Any]) -> bool:
    test = (image_config.get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def lacks_shell(text: str) -> bool:
    """Whether an engine error or a container's last words say the gate's shell is missing.

    Without an init, the start fails (`exec: "/bin/sh": stat /bin/sh: no such file`);
    with one, the init reports it and exits 127 (`exec /bin/sh failed`).
    """
    return f'exec: "{SHELL}"' in text or f"exec {SHELL} failed" in text


class NoShell(Exception):
    """The image has no /bin/sh: the service must be started the plain way."""
