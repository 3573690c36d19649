"""The plan: what `up` will do, as plain data, decided before anything is done.

From the selection, each service's configuration hash and what the backend runs now, the plan
says per service whether its container is created, recreated or kept (and why), what it waits
for (its `depends_on` conditions as milestones: started, ready, completed), whether it is
started early and held at the start gate, who waits for it to exit 0, and in which order
containers are created; and which images, networks and volumes the run needs. `envctl up
--dry-run` prints it; `envctl.runtime.run` carries it out. Compose calls this convergence;
Terraform, plan and apply.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from envctl.graph import dependents, depths
from envctl.topology import COMPLETED, READY, STARTED, Topology

# What a dependent waits for, per depends_on condition.
MILESTONE = {STARTED: "started", READY: "ready", COMPLETED: "completed"}

CREATE, RECREATE, KEEP = "create", "recreate", "keep"


@dataclass(frozen=True)
class Running:
    """What the backend runs for a service now, as far as the plan cares."""

    running: bool
    config_hash: str | None


@dataclass(frozen=True)
class ServicePlan:
    """One service's (or mock's) part of the plan."""

    name: str
    action: str  # CREATE, RECREATE or KEEP
    reason: str
    waits_for: tuple[tuple[str, str], ...]  # (dependency, milestone), in depends_on order
    held: bool  # created and started early, its process held at the start gate until released
    awaited_exit_by: tuple[str, ...]  # dependents with `service_completed_successfully` on it
    replicas: int  # containers beside the first (`scale` - 1)
    depth: int  # 0 for what depends on nothing in the run; creation goes by depth

    @property
    def changes(self) -> bool:
        return self.action != KEEP


@dataclass(frozen=True)
class ImagePlan:
    key: str  # "base:NAME", "service:NAME", "mock:BASE", "image:NAME"
    ref: str | None  # its content-hash tag (or a pulled image's name); None until its base exists
    present: bool  # on the engine already: reused, not built or pulled


@dataclass(frozen=True)
class Plan:
    run: str
    fresh: bool  # nothing of the run exists yet: the run's lease and reaper are set up first
    services: dict[str, ServicePlan]  # in the topology's order
    images: tuple[ImagePlan, ...] = ()
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    on_host: Mapping[str, Mapping[int, int]] = field(default_factory=dict)  # --except: run by the developer

    def creation_order(self) -> list[str]:
        """The containers to create, dependencies first (a few at a time, in this order)."""
        changed = [s for s in self.services.values() if s.changes]
        return [s.name for s in sorted(changed, key=lambda s: (s.depth, s.name))]

    def requirements(self) -> dict[str, list[tuple[str, str]]]:
        """For the DAG: each service and the (dependency, milestone) pairs it waits for."""
        return {name: list(step.waits_for) for name, step in self.services.items()}

    def changed(self) -> set[str]:
        return {name for name, step in self.services.items() if step.changes}


def make_plan(topology: Topology, run: str, selected: list[str], config_hashes: Mapping[str, str | None],
              running: Mapping[str, Running], *, fresh: bool, gating: bool,
              images: tuple[ImagePlan, ...] = (), networks: tuple[str, ...] = (), volumes: tuple[str, ...] = (),
              on_host: Mapping[str, Mapping[int, int]] | None = None) -> Plan:
    """Decide what `up` does for `selected`.

    `config_hashes` is each service's configuration hash as it would be created now (None when
    it cannot be known yet: its image is still to be built, so it will differ). `running` is
    what the backend has for each service. `gating` is whether the start gate is on.
    """
    waits_for = {n: tuple((d.service, MILESTONE[d.condition]) for d in topology.services[n].depends_on
                          if d.service in selected) for n in selected}
    reasons = _reasons(selected, config_hashes, running, waits_for)
    depth = depths({n: [d for d, _ in waits_for[n]] for n in selected})
    awaited: dict[str, list[str]] = {}
    for name in selected:
        for dependency, milestone in waits_for[name]:
            if milestone == "completed":
                awaited.setdefault(dependency, []).append(name)
    services = {}
    for name in selected:
        action = KEEP if name not in reasons else RECREATE if name in running else CREATE
        held = gating and action != KEEP and any(d in reasons for d, _ in waits_for[name])
        services[name] = ServicePlan(name, action, reasons.get(name, "unchanged"), waits_for[name], held,
                                     tuple(awaited.get(name, ())), topology.services[name].scale - 1, depth[name])
    return Plan(run, fresh, services, images, networks, volumes, dict(on_host or {}))


def _reasons(selected: list[str], config_hashes: Mapping[str, str | None], running: Mapping[str, Running],
             waits_for: Mapping[str, tuple[tuple[str, str], ...]]) -> dict[str, str]:
    """Why each service's container is (re)created; a service not named is kept as it runs."""
    reasons: dict[str, str] = {}
    for name in selected:
        now = running.get(name)
        if now is None:
            reasons[name] = "new"
        elif not now.running:
            reasons[name] = "not running"
        elif config_hashes.get(name) is None:
            reasons[name] = "its image is built first"
        elif now.config_hash != config_hashes[name]:
            reasons[name] = "configuration or image changed"
    # A dependency that is recreated takes its dependents with it (they hold its address).
    edges = {n: [d for d, _ in waits_for[n]] for n in selected}
    for name in sorted(dependents(set(reasons), edges) & set(selected) - set(reasons)):
        reasons[name] = "a dependency is recreated"
    return reasons


def describe(plan: Plan) -> list[str]:
    """The plan as lines for people (`envctl up --dry-run`)."""
    lines = [f"run {plan.run}" + (" (new)" if plan.fresh else "")]
    if plan.images:
        lines.append("images:")
        for image in plan.images:
            what = "present" if image.present else "build or pull"
            lines.append(f"  {image.key:<28} {what}" + (f"  {image.ref}" if image.ref else ""))
    if plan.networks or plan.volumes:
        lines.append("networks: " + (", ".join(plan.networks) or "-") + "   volumes: " + (", ".join(plan.volumes) or "-"))
    lines.append("services (in creation order, then kept):")
    order = plan.creation_order() + [n for n, s in plan.services.items() if not s.changes]
    for name in order:
        lines.append("  " + _service_line(plan.services[name]))
    for name, ports in plan.on_host.items():
        lines.append(f"  {name:<20} on the host (--except), on port(s) " + ", ".join(str(p) for p in ports.values()))
    return lines


def _service_line(step: ServicePlan) -> str:
    line = f"{step.name:<20} {step.action:<8} ({step.reason})"
    if step.waits_for:
        line += "; waits for " + ", ".join(f"{d} {m}" for d, m in step.waits_for)
    if step.held:
        line += "; started early, held at the gate"
    if step.awaited_exit_by:
        line += "; must exit 0 for " + ", ".join(step.awaited_exit_by)
    if step.replicas:
        line += f"; {step.replicas} more replica(s)"
    return line
