"""`${...}` interpolation follows Compose v2 (compose-go's template package), rule by rule.

Our own cases, one or more per rule exercised by compose-go's template/template_test.go and
Compose v1's tests/unit/config/interpolation_test.py. Where the two differ we follow v2 and
say so. Variables: FOO=first, BAR="" (set but empty); anything else is unset.

Measured on these 92 cases: envctl before lazy evaluation 88 (eager defaults, and a JSON
default's closing brace left over when the variable is set).
"""
import pytest

from envctl.topology.interpolation import InterpolationError, Interpolator

ERROR = object()
VARIABLES = {"FOO": "first", "BAR": "", "JSON": '{"a":1}', "TEST:-": "hello", "TEST-": "hello"}

CASES = [
    # escaping and text without variables
    ("$${foo}", "${foo}"),
    ("$$FOO", "$FOO"),
    ("foo", "foo"),
    ("a $ string", "a $ string"),
    ("^REGEX$", "^REGEX$"),
    ("$", "$"),
    ("$}", "$}"),  # v2 keeps it; Compose v1 refused it
    ("$1 and $-", "$1 and $-"),
    # malformed expressions
    ("${", ERROR),
    ("${}", ERROR),
    ("${ }", ERROR),
    ("${ foo}", ERROR),
    ("${foo }", ERROR),
    ("${foo!}", ERROR),
    ("${FOO", ERROR),
    # plain variables
    ("$FOO-bar", "first-bar"),
    ("This ${missing} var", "This  var"),
    ("This ${BAR} var", "This  var"),
    ("This $FOO var", "This first var"),
    ("This ${FOO} var", "This first var"),
    ("ok $FOO:-bar", "ok first:-bar"),
    ("ok $BAZ?error", "ok ?error"),
    ("${FOO}${FOO}", "firstfirst"),
    ("$FOO$FOO", "firstfirst"),
    ("${foo}", ""),  # names are case-sensitive
    # defaults
    ("ok ${missing:-def}", "ok def"),
    ("ok ${missing-def}", "ok def"),
    ("ok ${BAR:-def}", "ok def"),
    ("ok ${FOO:-def}", "ok first"),
    ("ok ${BAR-def}", "ok "),
    ("ok ${BAR:-/non:-alphanumeric}", "ok /non:-alphanumeric"),
    ("ok ${BAR:-:?wwegegr??:?}", "ok :?wwegegr??:?"),
    ("ok ${BAR-:-hello}", "ok "),
    ("${TEST:-}", ""),
    ("${TEST-}", ""),
    ("${missing:-}", ""),
    # nested expansion in defaults
    ("ok ${UNSET_VAR-$FOO}", "ok first"),
    ("ok ${UNSET_VAR-${FOO}}", "ok first"),
    ("ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"),
    ("ok ${BAR:-$FOO}", "ok first"),
    ("ok ${BAR:-${FOO}}", "ok first"),
    ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
    ("ok ${BAR+$FOO}", "ok first"),
    ("ok ${BAR+$FOO ${FOO:+second}}", "ok first second"),
    ("${A:-${B:-${FOO}}}", "first"),
    ("${A:-${B:-}}x", "x"),
    # defaults are evaluated only when used (v2; v1 evaluated them eagerly)
    ("${FOO:-${MISSING:?not needed}}", "first"),
    ("${FOO-${MISSING?not needed}}", "first"),
    ("${MISSING:+${OTHER:?not needed}}", ""),
    ("${MISSING:-${OTHER:?needed}}", ERROR),
    # a JSON default is read whole, braces balanced
    ('${MISSING:-{"a":1}}', '{"a":1}'),
    ('${FOO:-{"a":1}}', "first"),
    ('${MISSING:-{"a":{"b":[1,2]}}}!', '{"a":{"b":[1,2]}}!'),
    ("${JSON}", '{"a":1}'),
    # alternatives
    ("ok ${UNSET_VAR:+presence_value}", "ok "),
    ("ok ${UNSET_VAR+presence_value}", "ok "),
    ("ok ${FOO:+presence_value}", "ok presence_value"),
    ("ok ${FOO+presence_value}", "ok presence_value"),
    ("ok ${BAR+presence_value}", "ok presence_value"),
    ("ok ${BAR:+presence_value}", "ok "),
    # required variables
    ("ok ${FOO:?err}", "ok first"),
    ("ok ${FOO?err}", "ok first"),
    ("ok ${BAR?err}", "ok "),
    ("not ok ${UNSET_VAR:?Mandatory Variable Unset}", ERROR),
    ("not ok ${BAR:?Mandatory Variable Empty}", ERROR),
    ("not ok ${UNSET_VAR:?}", ERROR),
    ("not ok ${UNSET_VAR?Mandatory Variable Unset}", ERROR),
    ("not ok ${UNSET_VAR?}", ERROR),
    ("not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}", ERROR),
    ("not ok ${BAR:?xazz:-redf}", ERROR),
    ("ok ${BAR?...:?bar}", "ok "),
    # the first operator after the name decides
    ("${UNSET_VAR?bar-baz}", ERROR),
    ("${UNSET_VAR-myerror?msg}", "myerror?msg"),
    ("${FOO?bar-baz}", "first"),
    ("${BAR:-default_value_for_empty_var}", "default_value_for_empty_var"),
    ("${UNSET_VAR-default_value_for_unset_var}", "default_value_for_unset_var"),
    ("${VARNAME:?val?ue}", ERROR),
    ("${VARNAME-va:-lu:?e}", "va:-lu:?e"),
    ("${VARNAME-va+lu?e}", "va+lu?e"),
    ("${FOO+va:+lue}", "va:+lue"),
    ("${FOO:+va:?lu:-e}", "va:?lu:-e"),
    # operators in the text around an expression change nothing
    ("-ok ${BAR:-defaultValue}", "-ok defaultValue"),
    ("+ok ${UNSET:-${BAR-defaultValue}}", "+ok "),
    ("-ok ${FOO:-defaultValue}", "-ok first"),
    (":-ok ${UNSET-defaultValue}", ":-ok defaultValue"),
    (":-ok ${BAR-defaultValue}", ":-ok "),
    (":?ok ${BAR-defaultValue}", ":?ok "),
    (":?ok ${BAR:-defaultValue}", ":?ok defaultValue"),
    (":+ok ${BAR:-defaultValue}", ":+ok defaultValue"),
    ("+ok ${BAR-defaultValue}", "+ok "),
    ("?ok ${BAR:-defaultValue}", "?ok defaultValue"),
    # unicode
    ("十六夜 ${FOO}", "十六夜 first"),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[t for t, _ in CASES])
def test_compose_template_rule(text: str, expected) -> None:
    interpolator = Interpolator(VARIABLES, unset=set())
    if expected is ERROR:
        with pytest.raises(InterpolationError):
            interpolator.plain(text)
    else:
        assert interpolator.plain(text) == expected


def test_required_message_is_interpolated_and_shown() -> None:
    with pytest.raises(InterpolationError, match="UNSET_VAR is not set: Mandatory Variable first"):
        Interpolator(VARIABLES).plain("${UNSET_VAR:?Mandatory Variable ${FOO}}")
    with pytest.raises(InterpolationError, match="BAR is empty: high bar"):
        Interpolator(VARIABLES).plain("${BAR:?high bar}")


def test_only_variables_actually_read_are_reported_unset() -> None:
    interpolator = Interpolator(VARIABLES, unset=set())
    interpolator.plain("${FOO:-$NOT_READ} ${READ_BUT_UNSET} $ALSO")
    assert interpolator.unset == {"READ_BUT_UNSET", "ALSO"}
