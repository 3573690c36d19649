"""`.env` files follow Compose v2 (compose-go's dotenv package), rule by rule.

The cases are our own, one or more per rule exercised by compose-go's
dotenv/godotenv_test.go, godotenv_var_expansion_test.go, parser_test.go and fixtures.
`ERROR` marks input Compose refuses. bench/dotenv_conformance.py runs the same cases
against python-dotenv to measure how close that library is.

Measured on these 110 cases: envctl before this parser 55, python-dotenv 1.2 78 (its misses:
`KEY: value`, errors it only logs, `\0NNN` escapes, the expansion grammar and lookup order).
"""
import pytest

from envctl.topology.dotenv import DotenvError, parse_dotenv

ERROR = object()
HOST = {"HOST_VAR": "from-host", "OPTION_A": "5"}

# (text, expected variables or ERROR); host variables are HOST.
CASES = [
    # plain statements
    ("FOO=bar", {"FOO": "bar"}),
    ("FOO =bar", {"FOO": "bar"}),
    ("FOO= bar", {"FOO": "bar"}),
    ("FOO=bar ", {"FOO": "bar"}),
    ("ONE=1\nTWO='2'\nTHREE = \"3\"", {"ONE": "1", "TWO": "2", "THREE": "3"}),
    ("EMPTY=", {"EMPTY": ""}),
    ("EMPTY=\nNEXT=1", {"EMPTY": "", "NEXT": "1"}),
    ("EMPTY=  \t", {"EMPTY": ""}),
    ("FOO=foobar=", {"FOO": "foobar="}),
    ("FOO=postgres://localhost:5432/db?sslmode=disable", {"FOO": "postgres://localhost:5432/db?sslmode=disable"}),
    ("OPTION_A=1:B", {"OPTION_A": "1:B"}),
    ("FOO=my string", {"FOO": "my string"}),
    ("FOO=a\\tb", {"FOO": "a\\tb"}),
    ("FOO=è and more", {"FOO": "è and more"}),
    # yaml-style statements
    ("OPTION_A: 1", {"OPTION_A": "1"}),
    ("OPTION_A: Foo=bar", {"OPTION_A": "Foo=bar"}),
    # names
    ("FOO.BAR=foobar", {"FOO.BAR": "foobar"}),
    ("VAR-WITH-DASHES=dashes", {"VAR-WITH-DASHES": "dashes"}),
    ("VAR_WITH_UNDERSCORES=u", {"VAR_WITH_UNDERSCORES": "u"}),
    ('="value"', {"": "value"}),
    ("lol$wut", ERROR),
    ("FOO BAR=1", ERROR),
    # export
    ("export OPTION_A=2", {"OPTION_A": "2"}),
    ("export OPTION_B='\\n'", {"OPTION_B": "\\n"}),
    ("export exportFoo=2", {"exportFoo": "2"}),
    ("exportFOO=2", {"exportFOO": "2"}),
    ("export_FOO =2", {"export_FOO": "2"}),
    ("export.FOO= 2", {"export.FOO": "2"}),
    ("export\tOPTION_A=2", {"OPTION_A": "2"}),
    ("  export OPTION_A=2", {"OPTION_A": "2"}),
    ("\texport OPTION_A=2", {"OPTION_A": "2"}),
    ('export OPTION_A="export A"', {"OPTION_A": "export A"}),
    # comments and blank lines
    ("# comment\nFOO=1", {"FOO": "1"}),
    ("\t # indented comment\nFOO=1", {"FOO": "1"}),
    ("\n\r\n\t\t \nFOO=1\n", {"FOO": "1"}),
    ("FOO=bar # this is foo", {"FOO": "bar"}),
    ("FOO=bar #this is foo", {"FOO": "bar"}),
    ("FOO=bar #", {"FOO": "bar"}),
    ("FOO=123#not-an-inline-comment", {"FOO": "123#not-an-inline-comment"}),
    ('FOO="bar#baz"', {"FOO": "bar#baz"}),
    ('FOO="bar#baz"#', {"FOO": "bar#baz"}),
    ('FOO="bar#baz" # comment', {"FOO": "bar#baz"}),
    ("FOO='bar#baz' # comment", {"FOO": "bar#baz"}),
    ('FOO="bar#baz#bang" # comment', {"FOO": "bar#baz#bang"}),
    ("FOO='ba#r'", {"FOO": "ba#r"}),
    ('TAG="1.2" # pinned', {"TAG": "1.2"}),
    # leading whitespace
    (" KEY =value", {"KEY": "value"}),
    ("   KEY=value", {"KEY": "value"}),
    ("\tKEY=value", {"KEY": "value"}),
    # quotes
    ('FOO="bar"', {"FOO": "bar"}),
    ("FOO='bar'", {"FOO": "bar"}),
    ("OPTION_C=''", {"OPTION_C": ""}),
    ('OPTION_G=""', {"OPTION_G": ""}),
    ('FOO="escaped\\"bar"', {"FOO": 'escaped"bar'}),
    ('FOO="\\"quoted\\""', {"FOO": '"quoted"'}),
    ("FOO=\"'d'\"", {"FOO": "'d'"}),
    ("OPTION_I=\"echo 'asd'\"", {"OPTION_I": "echo 'asd'"}),
    ("OPTION_D='\\n'", {"OPTION_D": "\\n"}),
    ('OPTION_H="\\n"', {"OPTION_H": "\n"}),
    ('FOO="first line\nsecond line"', {"FOO": "first line\nsecond line"}),
    ("FOO='first line\nsecond line'\nZ=last", {"FOO": "first line\nsecond line", "Z": "last"}),
    ('URLS="stratum+tcp://a:3333\nstratum+tcp://b:443"', {"URLS": "stratum+tcp://a:3333\nstratum+tcp://b:443"}),
    # escapes in double quotes
    ('FOO="bar\\nbaz"', {"FOO": "bar\nbaz"}),
    ('FOO="a\\tb"', {"FOO": "a\tb"}),
    ('KEY="Z\\aZ\\bZ\\fZ\\nZ\\rZ\\tZ\\vZ\\\\Z\\0123Z"', {"KEY": "Z\aZ\bZ\fZ\nZ\rZ\tZ\vZ\\ZSZ"}),
    ('KEY="\\0123"', {"KEY": "S"}),
    ('KEY="\\x07"', {"KEY": "\\x07"}),
    ('KEY="\\u12e4"', {"KEY": "\\u12e4"}),
    ('KEY="\\U00101234"', {"KEY": "\\U00101234"}),
    ('FOO="bar\\n\\ b\\az"', {"FOO": "bar\n\\ b\az"}),
    ('FOO="bar\\\\\\n\\ b\\az"', {"FOO": "bar\\\n\\ b\az"}),
    ('FOO="bar\\\\r\\ b\\az"', {"FOO": "bar\\r\\ b\az"}),
    ('FOO="bar\\nbaz\\\\"', {"FOO": "bar\nbaz\\"}),
    # unterminated quotes
    ('KEY="', ERROR),
    ('KEY="value', ERROR),
    ('KEY="value\\"', ERROR),
    ("KEY=\"value'", ERROR),
    ("KEY='", ERROR),
    ("KEY='value", ERROR),
    ("KEY='value\\'", ERROR),
    ("KEY='value\"", ERROR),
    # expansion
    ("FOO=test\nBAR=$FOO", {"FOO": "test", "BAR": "test"}),
    ("FOO=test\nBAR=${FOO}bar", {"FOO": "test", "BAR": "testbar"}),
    ("BAR=$FOO", {"BAR": ""}),
    ('FOO=test\nBAR="quote $FOO"', {"FOO": "test", "BAR": "quote test"}),
    ("BAR='quote $FOO'", {"BAR": "quote $FOO"}),
    ('FOO="foo\\$BAR"', {"FOO": "foo$BAR"}),
    ('FOO="foo\\${BAR}"', {"FOO": "foo${BAR}"}),
    ('FOO=test\nBAR="foo\\${FOO} ${FOO}"', {"FOO": "test", "BAR": "foo${FOO} test"}),
    ("FOO=$$literal", {"FOO": "$literal"}),
    ("TEST=$HOST_VAR", {"TEST": "from-host"}),
    ("RESULT=${UNSET_VAR:-Default Value}", {"RESULT": "Default Value"}),
    ("E=\nRESULT=${E:-Default Value}", {"E": "", "RESULT": "Default Value"}),
    ("T=Test Value\nRESULT=${T:-Default Value}", {"T": "Test Value", "RESULT": "Test Value"}),
    ("RESULT=${UNSET_VAR-Default Value}", {"RESULT": "Default Value"}),
    ("E=\nRESULT=${E-Default Value}", {"E": "", "RESULT": ""}),
    ("RESULT=${UNSET_VAR:?Test error}", ERROR),
    ("E=\nRESULT=${E:?Test error}", ERROR),
    ("E=\nRESULT=${E?Test error}", {"E": "", "RESULT": ""}),
    ("RESULT=${UNSET_VAR?Test error}", ERROR),
    ("T=v\nRESULT=${T?Default Value}", {"T": "v", "RESULT": "v"}),
    # a host value wins in expansions; the file's own value is kept for the key itself
    ("OPTION_A=1\nOPTION_B=${OPTION_A}\nOPTION_D=${OPTION_A}_${OPTION_A}",
     {"OPTION_A": "1", "OPTION_B": "5", "OPTION_D": "5_5"}),
    ("OPTION_A=${OPTION_A:-1}\nOPTION_B=${OPTION_A}", {"OPTION_A": "5", "OPTION_B": "5"}),
    ("X=${UNSET:-1}\nY=${X}_${X}", {"X": "1", "Y": "1_1"}),
    # a bare name takes the host's value, or nothing
    ("HOST_VAR", {"HOST_VAR": "from-host"}),
    ("HOST_VAR\nfoo=bar", {"HOST_VAR": "from-host", "foo": "bar"}),
    ("VARIABLE_NOT_FOUND", {}),
    ("VARIABLE_NOT_FOUND\nfoo=bar", {"foo": "bar"}),
    # a UTF-8 byte-order mark is not part of the first name
    ("\ufeffOPTION_A=1\nOPTION_B=2", {"OPTION_A": "1", "OPTION_B": "2"}),
    # Windows line endings
    ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
]


def host(name: str) -> str | None:
    return HOST.get(name)


@pytest.mark.parametrize("text, expected", CASES, ids=[repr(t)[:60] for t, _ in CASES])
def test_compose_dotenv_rule(text: str, expected) -> None:
    if expected is ERROR:
        with pytest.raises(DotenvError):
            parse_dotenv(text, host)
    else:
        assert parse_dotenv(text, host) == expected


def test_an_error_names_its_line() -> None:
    with pytest.raises(DotenvError) as caught:
        parse_dotenv("A=1\n# fine\nBAD KEY=2\n")
    assert caught.value.line == 3
    assert "space" in caught.value.message
