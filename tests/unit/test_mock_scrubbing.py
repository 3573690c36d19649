"""The mock's scrubber: secret keys are redacted in JSON and form bodies alike, requests and responses."""
from __future__ import annotations

import gzip
from urllib.parse import parse_qsl

from vcr.request import Request

from envctl.mockserver.scrubbing import REDACTED, Scrubber

FORM = "application/x-www-form-urlencoded"
TOKEN_REQUEST = b"grant_type=client_credentials&client_id=shop&client_secret=s3cr3t-value&scope=a+b"


def scrubber(*body_keys: str) -> Scrubber:
    return Scrubber(headers=[], query=[], json_keys=list(body_keys))


def post(body: bytes, content_type: str) -> Request:
    return Request("POST", "http://upstream/oauth/token", body, {"Content-Type": content_type})


def test_an_oauth_token_requests_client_secret_is_redacted_and_the_other_fields_kept():
    scrubbed = scrubber().request(post(TOKEN_REQUEST, FORM))
    assert b"s3cr3t-value" not in scrubbed.body
    assert dict(parse_qsl(scrubbed.body.decode())) == {
        "grant_type": "client_credentials", "client_id": "shop", "client_secret": REDACTED, "scope": "a b"}


def test_a_form_without_secrets_keeps_its_exact_bytes_and_configured_keys_count():
    assert scrubber().request(post(b"q=shoes&page=2", FORM)).body == b"q=shoes&page=2"
    assert b"4242" not in scrubber("cvc").request(post(b"card=x&CVC=4242", f"{FORM}; charset=utf-8")).body


def test_multipart_form_fields_are_redacted_in_place():
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nshop\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"client_secret\"\r\n\r\ns3cr3t-value\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n")
    scrubbed = scrubber().request(post(body, "multipart/form-data; boundary=XyZ")).body
    assert scrubbed == body.replace(b"s3cr3t-value", REDACTED.encode())


def test_form_encoded_responses_are_scrubbed_compressed_or_not():
    tokens = b"access_token=gho_abc123&token_type=bearer"
    plain = scrubber().response({"headers": {"Content-Type": [FORM]}, "body": {"string": tokens}})
    assert plain["body"]["string"] == f"access_token={REDACTED}&token_type=bearer".encode()
    zipped = scrubber().response({"headers": {"Content-Type": [FORM], "Content-Encoding": ["gzip"]},
                                  "body": {"string": gzip.compress(tokens)}})
    assert b"gho_abc123" not in gzip.decompress(zipped["body"]["string"])


def test_json_bodies_are_scrubbed_as_before():
    scrubbed = scrubber().request(post(b'{"user": "a", "auth": {"password": "pw"}}', "application/json"))
    assert b"pw" not in scrubbed.body and b'"user": "a"' in scrubbed.body


def test_secret_keys_are_found_however_the_json_writes_them():
    s = scrubber("cvc")
    for raw in (b'{"pass\\u0077ord": "s3cr3t"}', b'{"PassWord": "s3cr3t"}', b'{"card": {"CVC": "s3cr3t"}}',
                '{"password": "s3cr3t", "name": "Zoë"}'.encode(), b'[{"token": "s3cr3t"}]'):
        assert b"s3cr3t" not in s.request(post(raw, "application/json")).body, raw
    plain = b'{"amount": 1200, "note": "no secrets, and a key-like word: tokenless"}'
    assert s.request(post(plain, "application/json")).body is plain  # the very bytes, not a copy


def test_scrubbing_a_request_leaves_the_callers_request_as_it_was():
    original = Request("POST", "http://upstream/v1?api_key=s3cr3t", b'{"password": "s3cr3t"}',
                       {"Authorization": "Bearer s3cr3t", "Content-Type": "application/json"})
    scrubber().request(original)
    assert (original.uri, original.body, original.headers["Authorization"]) == (
        "http://upstream/v1?api_key=s3cr3t", b'{"password": "s3cr3t"}', "Bearer s3cr3t")


def test_secret_form_fields_are_found_however_the_form_writes_them():
    s = scrubber("my secret")
    for raw in (b"client_%73ecret=s3cr3t&a=1", b"CLIENT_SECRET=s3cr3t", b"my+secret=s3cr3t", b"my%20secret=s3cr3t",
                "password=s3cr3t&name=Zo\u00eb".encode()):
        assert b"s3cr3t" not in s.request(post(raw, FORM)).body, raw
    plain = b"amount=1250&currency=eur&source=tok_visa&note=tokenless+secretary"
    assert s.request(post(plain, FORM)).body is plain
