"""The start-up timeline: spans from progress events, and the critical path."""
from envctl.observation.timeline import as_text, build_timeline

EVENTS = [
    {"subject": "base:os", "phase": "bootstrap", "detail": "", "t": 0.0},
    {"subject": "base:os", "phase": "built", "detail": "", "t": 20.0},
    {"subject": "db", "phase": "create", "detail": "", "t": 21.0},
    {"subject": "cache", "phase": "create", "detail": "", "t": 21.0},
    {"subject": "db", "phase": "start", "detail": "", "t": 21.2},
    {"subject": "cache", "phase": "start", "detail": "", "t": 21.1},
    {"subject": "db", "phase": "wait", "detail": "tcp 5432", "t": 21.5},
    {"subject": "cache", "phase": "wait", "detail": "", "t": 21.2},
    {"subject": "cache", "phase": "ready", "detail": "tcp ok", "t": 21.4},
    {"subject": "db", "phase": "ready", "detail": "tcp ok", "t": 24.0},
    {"subject": "api", "phase": "create", "detail": "", "t": 24.0},
    {"subject": "api", "phase": "start", "detail": "", "t": 24.1},
    {"subject": "api", "phase": "wait", "detail": "", "t": 24.3},
    {"subject": "api", "phase": "ready", "detail": "GET /healthz: HTTP 200", "t": 25.0},
]
DEPS = {"api": ["db", "cache"], "db": [], "cache": []}


def test_spans_per_phase_and_readiness() -> None:
    timeline = build_timeline("r1", EVENTS, DEPS)
    rows = {r.name: r for r in timeline.service_rows()}
    assert [s.phase for s in rows["db"].spans] == ["create", "start", "wait"]
    assert rows["db"].spans[2].seconds == 2.5 and rows["db"].ready_at == 24.0
    assert rows["api"].result == "GET /healthz: HTTP 200"
    image = [r for r in timeline.rows if r.kind == "image"][0]
    assert image.name == "base:os" and image.spans[0].seconds == 20.0
    assert timeline.total == 25.0


def test_critical_path_follows_the_dependency_that_was_ready_last() -> None:
    timeline = build_timeline("r1", EVENTS, DEPS)
    assert timeline.critical_path == ["db", "api"]
    assert {r.name for r in timeline.rows if r.critical} == {"db", "api"}
    text = as_text(timeline)
    assert "critical path: db -> api" in text and "* db" in text and "  cache" in text


def test_a_failed_service_is_marked() -> None:
    events = EVENTS[:8] + [{"subject": "db", "phase": "failed", "detail": "exited with code 1", "t": 22.0}]
    row = {r.name: r for r in build_timeline("r2", events, DEPS).service_rows()}["db"]
    assert row.failed and row.result == "exited with code 1" and row.ready_at is None


def test_a_container_created_up_front_does_not_count_its_wait_for_dependencies_as_creating() -> None:
    events = [
        {"subject": "api", "phase": "create", "detail": "", "t": 0.0},
        {"subject": "api", "phase": "created", "detail": "", "t": 0.1},
        {"subject": "api", "phase": "start", "detail": "", "t": 3.0},
        {"subject": "api", "phase": "wait", "detail": "", "t": 3.4},
        {"subject": "api", "phase": "ready", "detail": "ok", "t": 3.5},
    ]
    row = build_timeline("r1", events, {"api": []}).service_rows()[0]
    assert [(s.phase, round(s.seconds, 2)) for s in row.spans] == [("create", 0.1), ("start", 0.4), ("wait", 0.1)]


def test_the_critical_path_runs_through_images_and_services_alike() -> None:
    """db's image came from base:os, which took 20 s: that, not cache, held the run up."""
    deps = {**DEPS, "db": ["image base:os"], "cache": []}
    timeline = build_timeline("r1", EVENTS, deps)
    assert timeline.critical_path == ["image base:os", "db", "api"]
    assert [r.name for r in timeline.rows if r.critical] == ["base:os", "db", "api"]
    assert "critical path: image base:os -> db -> api" in as_text(timeline)
    late_image = [*EVENTS[:2], {"subject": "api", "phase": "build", "detail": "", "t": 20.0},
                  {"subject": "api", "phase": "built", "detail": "", "t": 24.05}, *EVENTS[2:]]
    deps = {**DEPS, "api": ["db", "cache", "image api"]}
    assert build_timeline("r1", late_image, deps).critical_path == ["image api", "api"]
