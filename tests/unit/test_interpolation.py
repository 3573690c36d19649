"""Host-variable interpolation follows Compose's rules; references are kept for wiring."""
import pytest

from envctl.topology.interpolation import InterpolationError, Interpolator, Reference


def interp(**variables: str) -> Interpolator:
    return Interpolator(variables, unset=set())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("${A}", "a"),
        ("$A-x", "a-x"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${A:+alt}", "alt"),
        ("${MISSING:+alt}", ""),
        ("$${A}", "${A}"),
        ("cost: $$5", "cost: $5"),
        ("${MISSING:-${A}}", "a"),
        ("no vars", "no vars"),
        ("trailing $", "trailing $"),
    ],
)
def test_host_variables_follow_compose_rules(text: str, expected: str) -> None:
    assert interp(A="a", EMPTY="").plain(text) == expected


def test_unset_variable_becomes_empty_and_is_reported() -> None:
    i = interp()
    assert i.plain("x${NOPE}y") == "xy"
    assert i.unset == {"NOPE"}


def test_required_variable_names_itself_and_the_message() -> None:
    with pytest.raises(InterpolationError, match="DB_PASSWORD is not set: ask ops"):
        interp().plain("${DB_PASSWORD?ask ops}")
    with pytest.raises(InterpolationError, match="is empty"):
        interp(X="").plain("${X:?}")


def test_references_are_kept_as_parts() -> None:
    parts = interp().template("postgresql://app@${db.host}:${db.port}/app")
    assert parts == ("postgresql://app@", Reference("db", "host"), ":", Reference("db", "port"), "/app")
    assert interp().template("${api.port.8000}") == (Reference("api", "port", 8000),)
    assert interp().template("${pay-ments.url}") == (Reference("pay-ments", "url"),)


def test_escaped_reference_stays_literal() -> None:
    assert interp().template("$${db.host}") == ("${db.host}",)


def test_reference_outside_environment_is_refused() -> None:
    with pytest.raises(InterpolationError, match="only allowed in 'environment'"):
        interp().plain("${db.host}")


@pytest.mark.parametrize("text", ["${db.hots}", "${db.port.x}", "${A", "${!}"])
def test_malformed_expressions_are_errors(text: str) -> None:
    with pytest.raises(InterpolationError):
        interp().template(text)
