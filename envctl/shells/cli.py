"""The `envctl` command: argument parsing and presentation over the library API."""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import signal
import sys
from datetime import datetime
from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.markup import escape

from envctl import bugs, processes
from envctl.errors import EnvctlError, Terminated
from envctl.project import (BUILD_PARALLELISM, describe_plan, ALLOW_ENV, BACKEND_ENV, BACKENDS, CACHE_ENV, COMPOSE_PLATFORM_ENV, OPT_INS, PLATFORM_ENV, REGISTRY_ENV,
                            DriftReport, HeaderSyntaxError, MockReport, Project, Pushed, SentRequest, ServiceStatus,
                            UpResult)
from envctl.shells import ci as ci_api
from envctl.shells.presentation import progress_for, table
from envctl.topology import secrets  # the output streams' masking


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # CI logs: do not wrap tables at 80 columns
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


out = _console()
err = _console(stderr=True)
# Everything the CLI prints goes through this, except what 'envctl env' hands over on purpose.
masker = secrets.Masker()


# The commands that start containers, and so need the file's opt-ins (privileged, a port beyond
# loopback...). The others only look at, build or remove what is there: a run started with
# `--allow` is seen and taken down without it.
GRANTING_COMMANDS = ("up", "ci", "config")


def _starts_containers() -> bool:
    command = click.get_current_context(silent=True)
    return command is None or command.info_name in GRANTING_COMMANDS


class Context:
    """The global options, and the project they name (loaded when a command first needs it)."""

    def __init__(self, files: tuple[str, ...], run: str | None, env_files: tuple[str, ...] = ()) -> None:
        self.files = files
        self.env_files = env_files
        self.run = run
        self._project: Project | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = Project.load(self.files, env_files=self.env_files, run=self.run,
                                         starts_containers=_starts_containers())
            masker.add(self._project.secret_values())
            for warning in self._project.topology.warnings:
                err.print(f"[yellow]warning:[/] {warning}")
        return self._project


_pass_context = click.make_pass_decorator(Context)


def pass_ctx(fn=None, *, short_file: bool = True):
    """Pass the Context; also accept the global options after the command name
    (`envctl config -f FILE`, `envctl up --run X`). `logs` keeps -f for --follow, as
    `docker compose logs -f` does, and takes --file."""

    def decorate(fn):
        flags = ("-f", "--file") if short_file else ("--file",)

        @click.option(*flags, "file_", multiple=True, type=click.Path(), metavar="FILE",
                      help="A topology or Compose file, as before the command (repeat to merge several).")
        @click.option("--run", "run_", default=None, metavar="RUN", help="The run to act on (as before the command).")
        @click.option("--env-file", "env_file_", multiple=True, type=click.Path(), metavar="FILE",
                      help="Read host variables from FILE instead of .env (as before the command).")
        @_pass_context
        @functools.wraps(fn)
        def wrapper(c: Context, *args, file_: tuple[str, ...] = (), run_: str | None = None,
                    env_file_: tuple[str, ...] = (), **kwargs):
            if file_:
                c.files = c.files + tuple(file_)
            if env_file_:
                c.env_files = c.env_files + tuple(env_file_)
            if run_:
                c.run = run_
            return fn(c, *args, **kwargs)

        return wrapper

    return decorate(fn) if fn is not None else decorate


def _cache_option(fn):
    return click.option("--cache", metavar="HOST[:PORT]/PREFIX", default=None,
                        help=f"The shared image cache (default: ${CACHE_ENV}, else 'cache:' in the "
                        "topology): images are pulled from it by content hash before building, and what is "
                        "built is pushed back.")(fn)


def _platform_option(fn):
    return click.option("--platform", metavar="linux/ARCH", default=None,
                        help=f"Make the images for this platform, e.g. linux/arm64 (default: ${PLATFORM_ENV}, "
                        f"else ${COMPOSE_PLATFORM_ENV}, else the engine's own). It is part of every content "
                        "hash; another architecture runs under emulation (Docker Desktop has it; on Linux, "
                        "qemu-user-static).")(fn)


def _push_options(fn):
    fn = click.option("--tag-branch", is_flag=True, help="Also tag with the git branch ($BRANCH_NAME in Jenkins).")(fn)
    return click.option("--registry", metavar="HOST[:PORT]/PREFIX", default=None,
                        help=f"Where to push (default: ${REGISTRY_ENV}, else 'registry:' in the topology).")(fn)


def _choose_backend(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:  # read where the backend is connected, as $ENVCTL_BACKEND (children see it too)
        os.environ[BACKEND_ENV] = value


def _backend_option(fn):
    return click.option("--backend", type=click.Choice(BACKENDS), default=None, expose_value=False,
                        callback=_choose_backend, metavar="engine|swarm",
                        help=f"Where runs go: the local engine, or the swarm DOCKER_HOST manages (default: "
                        f"${BACKEND_ENV}, else 'backend:' in the topology, else engine).")(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--file", "files", multiple=True, envvar=["ENVCTL_FILE", "COMPOSE_FILE"], type=click.Path(),
              metavar="FILE", help="A topology or Compose file; repeat to merge several, as Compose does "
              "(default: ./envctl.yaml, else ./compose.yaml or ./docker-compose.yml and its override file).")
@click.option("--env-file", "env_files", multiple=True, type=click.Path(), metavar="FILE",
              help="Read host variables from FILE instead of the .env beside the topology (repeatable, as in Compose).")
@click.option("--run", "run", envvar="ENVCTL_RUN", metavar="RUN",
              help="The run to act on (default: the current one); with 'up', the id for a new run.")
@click.option("--allow", "allow", multiple=True, type=click.Choice(OPT_INS), metavar="WHAT",
              help="Let the file's services have what gives them the host: 'privileged', 'docker-socket', "
              "'publish-beyond-loopback' (ports on the addresses the file names) "
              f"(repeatable; also {ALLOW_ENV}=privileged,docker-socket).")
@_backend_option
@click.version_option(package_name="envctl")
@click.pass_context
def main(ctx: click.Context, files: tuple[str, ...], env_files: tuple[str, ...], run: str | None,
         allow: tuple[str, ...]) -> None:
    """Bring up a multi-service integration environment on one Docker engine."""
    if allow:  # the loader reads the opt-ins from the environment, as child processes do
        os.environ[ALLOW_ENV] = ",".join([*filter(None, [os.environ.get(ALLOW_ENV)]), *allow])
    ctx.obj = Context(tuple(files), run or None, tuple(env_files))


@main.command()
@click.argument("services", nargs=-1)
@click.option("--except", "except_services", multiple=True, metavar="SERVICE[:PORT]",
              help="Start everything else; containers reach SERVICE on the host, at PORT (repeatable).")
@click.option("--profile", "profiles", multiple=True, help="Also start services of this profile.")
@click.option("--keep-on-failure", is_flag=True, help="Leave the run up when start-up fails, for debugging.")
@click.option("--parallel", default=BUILD_PARALLELISM, show_default="twice the machine's cores", type=click.IntRange(min=1),
              help="Images built at once.")
@click.option("--record", "record", multiple=True, metavar="MOCK",
              help="This mock proxies every request to its upstream and appends it to its cassettes (repeatable).")
@click.option("--record-all", is_flag=True, help="Every mock records.")
@click.option("--record-missing", "record_missing", multiple=True, metavar="MOCK",
              help="This mock replays what its cassettes match and records only the misses (repeatable).")
@click.option("--record-missing-all", is_flag=True, help="Every mock replays what matches and records the misses.")
@click.option("--bind-to", "bind_to", type=click.IntRange(min=1), metavar="PID",
              help="Remove the run when process PID exits (in CI: --bind-to $$ ties it to the job's shell).")
@click.option("--ttl", metavar="DURATION", help="Remove the run after DURATION (90s, 30m, 2h, 1d, 1h30m), e.g. on a shared host.")
@click.option("--dry-run", is_flag=True, help="Print the plan (what would be built, created, recreated, kept, held) and stop.")
@_cache_option
@_platform_option
@_backend_option
@pass_ctx
def up(c: Context, services: tuple[str, ...], except_services: tuple[str, ...], profiles: tuple[str, ...],
       keep_on_failure: bool, parallel: int, record: tuple[str, ...], record_all: bool,
       record_missing: tuple[str, ...], record_missing_all: bool, bind_to: int | None, ttl: str | None,
       dry_run: bool, cache: str | None, platform: str | None) -> None:
    """Build what is missing and bring the stack (or SERVICES and MOCKS) to ready.

    The run stays up after the command ends, until 'envctl down', unless --bind-to or --ttl
    give it an end. If envctl itself is killed half-way, a reaper removes what it created.
    With --dry-run, only the plan is printed: nothing is built, created or written.
    """
    try:
        owner = Project.lease_for(bind_to, ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bind-to/--ttl") from None
    project = c.project.connect()
    if dry_run:
        plan = project.plan(services, except_services=except_services, profiles=profiles, record=record,
                            record_all=record_all, record_missing=record_missing,
                            record_missing_all=record_missing_all, platform=platform)
        click.echo("\n".join(describe_plan(plan)))
        return
    _say_differences(project)
    _force_on_second_signal()
    with progress_for(err) as progress:
        result = project.up(services, except_services=except_services, profiles=profiles,
                            keep_on_failure=keep_on_failure, progress=progress, max_parallel_builds=parallel,
                            record=record, record_all=record_all, record_missing=record_missing,
                            record_missing_all=record_missing_all, owner=owner, cache=cache, platform=platform)
    _print_up(result, except_services)


def _print_up(result: UpResult, except_services: tuple[str, ...]) -> None:
    _print_warnings(result.warnings)
    out.print(_status_table(result.status))  # as each service was seen ready: no second look
    elapsed = result.timeline[-1].at - result.timeline[0].at if result.timeline else 0.0
    built = sum(1 for i in result.images.values() if i.built)
    out.print(f"run [bold]{result.run}[/] ready in {elapsed:.1f}s "
              f"({len(result.started)} started, {len(result.unchanged)} unchanged, {built} images built)")
    for name in (e.partition(":")[0] for e in except_services):
        out.print(f"'{name}' runs on the host: [bold]eval \"$(envctl env {name} --export)\"[/] then start it; "
                  f"containers reach it at host.docker.internal")


@main.command()
@click.option("--all", "all_runs", is_flag=True, help="Every run of this project on the engine.")
@click.option("--no-logs", is_flag=True, help="Do not save container logs first.")
@pass_ctx
def down(c: Context, all_runs: bool, no_logs: bool) -> None:
    """Save each container's log, then remove the run's containers, network and volumes.

    Best effort: every removal is tried; what the engine kept is named by id (exit 1).
    """
    project = c.project.connect()
    runs = project.runs_to_take_down(all_runs=all_runs)
    if not runs:
        out.print("nothing to take down")
        return
    with progress_for(err) as progress:
        teardown = project.down(runs, save_logs=not no_logs, progress=progress)
    for removed in teardown.removed:
        where = f"; logs in {removed.logs_dir}" if removed.logs_dir else ""
        out.print(f"run {removed.run} removed ({removed.containers} containers){where}")
    _raise_last(teardown.errors())


def _raise_last(errors: list[EnvctlError]) -> None:
    """Say every error but the last, then raise that one: it decides the exit status."""
    for exc in errors[:-1]:
        _show_error(exc)
    if errors:
        raise errors[-1]


@main.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--package-cache", is_flag=True, help="Also empty this user's package cache (bootstraps download again).")
@click.pass_obj
def gc(c: Context, dry_run: bool, package_cache: bool) -> None:
    """Remove every run on the engine whose owner has died or whose --ttl has passed (any project).

    Runs nobody owns (a plain 'envctl up') are kept: 'envctl down' removes those.
    """
    if package_cache:
        root, count, size = Project.prune_package_cache(dry_run=dry_run)
        out.print(f"{'would empty' if dry_run else 'emptied'} the package cache {root}: {count} packages, {size / 1e6:.0f} MB"
                  if root else "the package cache is off")
    collected = Project.gc(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for found, reason in collected.removed:
        files = f", {found.files} secrets and configs" if found.files else ""
        out.print(f"{verb} {found.project} run {found.run} ({found.containers} containers, "
                  f"{found.networks} networks, {found.volumes} volumes{files}): {reason}")
    for found in collected.kept:
        out.print(f"kept {found.project} run {found.run}: {found.keep_reason}")
    if not collected.removed and not collected.kept:
        out.print("no envctl runs on this engine")


@main.command()
@click.argument("services", nargs=-1)
@click.option("--parallel", default=BUILD_PARALLELISM, show_default="twice the machine's cores", type=click.IntRange(min=1),
              help="Images built at once.")
@click.option("--tag-commit", is_flag=True, help="Also tag each image with the git commit (git-SHA).")
@click.option("--push", "push_after", is_flag=True, help="Then push the images to the registry, as 'envctl push' does.")
@_push_options
@_cache_option
@click.option("--fill-cache", is_flag=True, help="Also push images found locally that the cache lacks.")
@_platform_option
@pass_ctx
def build(c: Context, services: tuple[str, ...], parallel: int, tag_commit: bool, push_after: bool,
          registry: str | None, tag_branch: bool, cache: str | None, fill_cache: bool, platform: str | None) -> None:
    """Build the bases and service images that are missing (content-hash tags)."""
    project = c.project.connect()
    with progress_for(err) as progress:
        made = project.build(services, parallel=parallel, tag_commit=tag_commit, push=push_after, registry=registry,
                             tag_branch=tag_branch, cache=cache, fill_cache=fill_cache, platform=platform,
                             progress=progress)
    _print_warnings(made.warnings)
    resolved, pushed = made.images, made.pushed
    built = [i for i in resolved.values() if i.built]
    out.print(_table(["image", "id", "built"], [
        [i.ref, i.id.split(":")[-1][:12], "built" if i.built else ("pulled" if i.pulled else "cached")]
        for i in resolved.values()]))
    out.print(f"{len(built)} built, {len(resolved) - len(built)} up to date")
    _print_pushed(pushed)


@main.command()
@click.argument("services", nargs=-1)
@click.option("--parallel", default=2, show_default=True, help="Images built at once (what is missing is built first).")
@_push_options
@pass_ctx
def push(c: Context, services: tuple[str, ...], parallel: int, registry: str | None, tag_branch: bool) -> None:
    """Push the project's images (or SERVICES') to the registry, tagged by content hash and git-SHA."""
    project = c.project.connect()
    with progress_for(err) as progress:
        pushed = project.push(services, parallel=parallel, registry=registry, tag_branch=tag_branch, progress=progress)
    _print_pushed(pushed)


@main.command()
@click.argument("services", nargs=-1)
@pass_ctx
def pull(c: Context, services: tuple[str, ...]) -> None:
    """Pull the registry images the topology runs ('image:' services and bases), or SERVICES'."""
    project = c.project.connect()
    with progress_for(err) as progress:
        pulled = project.pull(services, progress=progress)
    out.print(_table(["image", "id"], [[ref, image_id.split(":")[-1][:12]] for ref, image_id in pulled.items()]))
    out.print(f"{len(pulled)} pulled")


def _print_pushed(pushed: list[Pushed]) -> None:
    for item in pushed:
        out.print(f"pushed {item.remote}: {', '.join(item.tags)}" + (f" ({item.digest})" if item.digest else ""))


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {warning}")


@main.command()
@click.option("--prune", is_flag=True, help="Remove images the topology no longer produces (never one in use).")
@pass_ctx
def images(c: Context, prune: bool) -> None:
    """List the project's images (current, stale, in use); prune the stale ones."""
    project = c.project.connect()
    if prune:
        removed = project.prune_images()
        for row in removed:
            out.print(f"removed {row.ref} ({row.size / 1e6:.0f} MB)")
        out.print(f"{len(removed)} images removed")
        return
    rows = project.images()
    out.print(_table(["image", "kind", "id", "size", "created", "from", "state"], [
        [r.ref, r.kind, r.id.split(":")[-1][:12], f"{r.size / 1e6:.0f} MB",
         datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M"), "cache" if r.from_cache else "built",
         ("current" if r.current else "stale") + (", in use" if r.in_use else "")] for r in rows]))


@main.command()
@click.option("--services", "names_only", is_flag=True, help="Print only the service names.")
@click.option("--reveal", is_flag=True, help="Show secret values instead of ******.")
@pass_ctx
def config(c: Context, names_only: bool, reveal: bool) -> None:
    """Validate the topology and print it resolved: host variables filled in, files merged, secret
    values masked; the output loads again as the same topology. Comments at the top list what
    envctl changed or ignored."""
    project = c.project
    _print_warnings(project.config_warnings())
    _say_differences(project)
    masker.enabled = not reveal
    if names_only:
        for name in project.topology.services:
            out.print(name)
        return
    # The document masks secrets where they stand as values; the stream's masker would also
    # rewrite unrelated text that happens to contain one (an image called like a password).
    document = project.config(reveal=reveal)
    masker.enabled = False
    notes = "".join(f"# {note}\n" for note in project.topology.notes)
    if notes:
        notes = "# envctl changed or ignored these to run the file:\n" + notes
    click.echo(notes + yaml.safe_dump(document, sort_keys=False, default_flow_style=False), nl=False)


def _say_differences(project: Project) -> None:
    """Where envctl differs from docker compose on purpose: said, never silent."""
    for note in project.differences():
        err.print(f"[dim]note:[/] {note}")


@main.command()
@pass_ctx
def status(c: Context) -> None:
    """A table of the run's services: state, readiness and host ports."""
    project = c.project
    run = project.record().run
    rows = project.status()
    if not rows:
        raise EnvctlError(f"run {run} has no containers", fix="start it with 'envctl up'")
    out.print(f"run {run}")
    out.print(_status_table(rows))


@main.command()
@click.argument("service", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", default="all", help="Lines from the end of each log (default: all).")
@pass_ctx(short_file=False)
def logs(c: Context, service: str | None, follow: bool, tail: str) -> None:
    """Print the logs of SERVICE (or of every service, prefixed)."""
    project = c.project
    if follow:
        for name, line in project.follow_logs(service):
            click.echo(line if service else f"{name:<14}| {line}")
        return
    tail_value: int | str = int(tail) if tail.isdigit() else "all"
    for name, text in project.logs(service, tail=tail_value).items():
        for line in text.splitlines():
            click.echo(line if service else f"{name:<14}| {line}")


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def exec_(c: Context, service: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in SERVICE's container: envctl exec SERVICE -- CMD ARGS..."""
    running = c.project.exec(service, command)
    for chunk in running.output:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    sys.exit(running.exit_code())


@main.command()
@click.option("--format", "fmt", type=click.Choice(["svg", "dot", "mermaid"]), default=None,
              help="Default: svg when Graphviz is installed, else dot.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@pass_ctx
def graph(c: Context, fmt: str | None, output: Path | None) -> None:
    """Draw the topology: services, mocks, bases and their edges."""
    if fmt is None:
        fmt = Project.graph_format()
        if fmt == "dot":
            err.print("envctl: Graphviz 'dot' is not installed; printing DOT text (apt-get install graphviz for SVG)")
    text = c.project.graph(fmt).text
    if output:
        output.write_text(text)
        out.print(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@main.command()
@pass_ctx
def doctor(c: Context) -> None:
    """Check the engine, storage, disk, address pool, CA bundle, tools, ports and stale runs."""
    try:
        project = c.project
    except EnvctlError as exc:
        err.print(f"(no usable topology here, so only the machine is checked: {exc.message.splitlines()[0]})")
        diagnosis = Project.doctor_machine()
    else:
        diagnosis = project.doctor()
    mark = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    out.print(_table(["check", "", "detail", "fix"],
                     [[f.check, mark[f.status], f.detail, f.fix] for f in diagnosis.findings]))
    failed = diagnosis.error()
    if failed is not None:
        raise failed


@main.command()
@pass_ctx
def timeline(c: Context) -> None:
    """The last start-up of the run: per-service phases and the critical path (also as HTML)."""
    startup = c.project.timeline()
    click.echo(startup.as_text())
    click.echo(f"report: {startup.report}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--services", default="", metavar="A,B", help="Start only these (and what they need).")
@click.option("--junit-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Write start-up as JUnit ({ci_api.STARTUP_REPORT}) here.")
@click.option("--artifacts", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Copy the run's logs and timeline here after teardown.")
@pass_ctx
def ci(c: Context, command: tuple[str, ...], services: str, junit_dir: Path | None, artifacts: Path | None) -> None:
    """Up, run COMMAND against the stack, always tear down: envctl ci -- pytest ...

    COMMAND gets ENVCTL_RUN and ENVCTL_FILE (the pytest plugin attaches to that run). The run
    id is --run, else Jenkins' BUILD_TAG, else a new one. Exits with COMMAND's status (a
    passing COMMAND still fails when a strict mock objects or the teardown did not finish);
    on SIGTERM or SIGINT it stops COMMAND, tears down and exits 143 / 130.
    """
    names = [s.strip() for s in services.split(",") if s.strip()]
    _force_on_second_signal()
    with progress_for(err) as progress:
        outcome = ci_api.run_ci(c.project.connect(), command, services=names, junit_dir=junit_dir,
                                artifacts_dir=artifacts, progress=progress)
    for exc in outcome.errors:
        _show_error(exc)
    sys.exit(outcome.exit_code)


@main.command()
@click.argument("name", required=False)
@click.option("--reset", is_flag=True, help="Reset play counts, the request journal, unmatched requests and injected faults.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw reports (or requests) as JSON.")
@click.option("--requests", "show_requests", is_flag=True,
              help="List every request the mock(s) saw, scrubbed: what was sent and what was answered.")
@click.option("--method", help="With --requests: only this method.")
@click.option("--path", help="With --requests: only this path (without the query).")
@click.option("--drift", is_flag=True, help="Send every recorded request to the real upstream again and report, "
              "per interaction, the fields whose values now differ; exit 1 when any did.")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="With --drift: a header added to every request (cassettes hold no credentials; repeatable).")
@pass_ctx
def mocks(c: Context, name: str | None, reset: bool, as_json: bool, show_requests: bool,
          method: str | None, path: str | None, drift: bool, headers: tuple[str, ...]) -> None:
    """Report what each mock (or NAME) played, left unplayed, and could not match, with field-level diffs."""
    project = c.project
    if drift:
        try:
            report = project.mock_drift(name, headers)
        except HeaderSyntaxError as exc:
            raise click.BadParameter(str(exc), param_hint="--header") from None
        return _print_drift(report, as_json)
    if reset:
        out.print(f"reset {project.reset_mocks(name)} mock(s)")
        return
    if show_requests:
        return _print_requests(project.mock_requests(name, method=method, path=path), as_json)
    reports = project.mock_reports(name)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in reports], indent=1))
        return
    if not reports:
        out.print("no mocks are running in this run")
    for report in reports:
        _print_report(report, strict=project.topology.mocks[report.name].strict)


def _print_report(report: MockReport, strict: bool) -> None:
    out.print(f"[bold]{report.name}[/]{' (strict)' if strict else ''}: {report.mode}, {len(report.played)} played, "
              f"{len(report.unplayed)} unplayed, {len(report.unmatched)} unmatched"
              + (f", {len(report.recorded)} recorded" if report.recorded else ""))
    for item in report.played:
        out.print(f"  played   x{item['count']:<3} {item['request']}")
    for item in report.unplayed:
        out.print(f"  unplayed      {item['request']}")
    for described in report.describe_unmatched():
        first, *rest = described.splitlines()
        out.print(f"  [red]unmatched[/]     {escape(first)}")
        for line in rest:
            out.print(f"  {escape(line)}")
    for item in report.recorded:
        out.print(f"  recorded      {item}")


def _print_drift(report: DriftReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.answers(), indent=1))
    for mock in [] if as_json else report.mocks:
        out.print(f"[bold]{mock.mock}[/] against {escape(mock.upstream)}: "
                  f"{mock.drifted} of {len(mock.interactions)} interaction(s) drifted")
        for item in mock.interactions:
            mark = "[red]drifted[/]" if item.diff else "same   "
            out.print(f"  {mark} {item.cassette} #{item.index} {escape(item.request)}")
            for line in item.diff:
                out.print(f"          {escape(line)}")
    if report.drifted:
        sys.exit(1)


def _print_requests(seen: dict[str, list[SentRequest]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({name: [dataclasses.asdict(r) for r in rows] for name, rows in seen.items()}, indent=1))
        return
    for name, rows in seen.items():
        out.print(f"[bold]{name}[/]: {len(rows)} request(s)")
        for r in rows:
            query = "?" + "&".join(f"{k}={v}" for k, v in r.query.items()) if r.query else ""
            body = f" {r.body[:120]}" if r.body else ""
            out.print(escape(f"  #{r.seq} {r.method} {r.path}{query}{body} -> {r.status} {r.outcome}"
                             + (f" [{r.test}]" if r.test else "")))


@main.command()
@click.argument("service")
@click.argument("port", required=False, type=int)
@pass_ctx
def port(c: Context, service: str, port: int | None) -> None:
    """Print 127.0.0.1:HOSTPORT for SERVICE's PORT (default: its first port; another address if the file asks)."""
    click.echo(c.project.address(service, port))


@main.command()
@click.argument("service")
@click.option("--export", "export", is_flag=True, help="Print shell 'export' lines, for eval.")
@pass_ctx
def env(c: Context, service: str, export: bool) -> None:
    """Print SERVICE's environment as the host needs it (to run SERVICE on the host)."""
    values = c.project.env(service)
    for key, value in values.items():  # this command's job is to hand the values over: unmasked
        click.echo(f"export {key}={shlex.quote(value)}" if export else f"{key}={value}", file=_raw_stdout)


def _show_error(exc: EnvctlError) -> None:
    print(f"envctl: error: {exc}", file=sys.stderr)


def _status_table(rows: list[ServiceStatus]):
    def readiness(row: ServiceStatus) -> str:
        if row.ready is None:
            return "-"
        return "[green]ready[/]" if row.ready else "[red]not ready[/]"

    nodes = any(r.node for r in rows)  # on a cluster: where each task runs
    return _table(["service", "state", "ready", *(["node"] if nodes else []), "ports", "detail"], [
        [r.service, r.state if r.exit_code is None else f"{r.state} ({r.exit_code})", readiness(r),
         *([r.node or "-"] if nodes else []),
         " ".join(f"{r.address or '127.0.0.1'}:{h}->{c}" for c, h in sorted(r.ports.items())),
         "" if r.ready else r.detail] for r in rows])


def _table(headers: list[str], rows: list[list[str]]):
    return table(headers, rows)


_raw_stdout = sys.stdout  # unmasked, for 'envctl env'
_signals: list[int] = []  # what stopped us; click turns every interrupt into Abort
_forcible = False  # a second signal exits at once (commands whose runs have a reaper)


def _force_on_second_signal() -> None:
    global _forcible
    _forcible = True


def _on_signal(signum: int, frame: object) -> None:
    _signals.append(signum)
    terminating = signum in processes.terminating_signals()
    code = 143 if terminating else 130
    if len(_signals) > 1 and _forcible:
        # The user insists: stop now. The run's reaper sees this process die and removes the rest.
        os.write(2, b"envctl: stopping at once; the reaper removes what is left of the run\n")
        os._exit(code)
    if terminating:
        raise Terminated()
    raise KeyboardInterrupt()


def run() -> None:
    """Console-script entry point: errors for people, exit codes for machines."""
    for signum in (*processes.terminating_signals(), signal.SIGINT):
        signal.signal(signum, _on_signal)
    global _raw_stdout
    _raw_stdout = sys.stdout
    sys.stdout = secrets.MaskingWriter(sys.stdout, masker)
    sys.stderr = secrets.MaskingWriter(sys.stderr, masker)
    try:
        main.main(standalone_mode=False, prog_name="envctl")
    except click.exceptions.Abort:
        terminated = any(s in _signals for s in processes.terminating_signals())
        print(f"envctl: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EnvctlError as exc:
        _show_error(exc)
        sys.exit(exc.exit_code)
    except Terminated:
        print("envctl: terminated", file=sys.stderr)
        sys.exit(143)
    except KeyboardInterrupt:
        print("envctl: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - a bug: say so, keep the traceback for the report
        print(f"envctl: {bugs.record_bug(exc, masker.mask).message}", file=sys.stderr)
        sys.exit(bugs.BUG_EXIT_CODE)


if __name__ == "__main__":
    run()
