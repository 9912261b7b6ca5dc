"""Bad input gets a clear error in the client's own dialect, and nothing panics."""

import json
import urllib.error
import urllib.request

import anthropic
import openai
import pytest


def post(url: str, body: bytes, headers: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def assert_openai_error(body: dict):
    assert set(body) == {"error"}, body
    assert {"message", "type", "param", "code"} <= set(body["error"]), body
    assert body["error"]["message"]


def assert_anthropic_error(body: dict, kind: str):
    assert body["type"] == "error", body
    assert body["error"]["type"] == kind, body
    assert body["error"]["message"]


def test_malformed_json(gateway):
    key = gateway.keys["dev-openai"]
    status, headers, body = post(gateway.url + "/ext/v1/chat/completions", b"{not json", {"authorization": f"Bearer {key}"})
    assert status == 400
    assert_openai_error(body)
    assert "x-pai-call-id" in {k.lower() for k in headers}
    key = gateway.keys["dev-anthropic"]
    status, _, body = post(gateway.url + "/ext/v1/messages", b"[1,2", {"x-api-key": key})
    assert status == 400
    assert_anthropic_error(body, "invalid_request_error")


def test_missing_fields(gateway):
    key = gateway.keys["dev-anthropic"]
    status, _, body = post(
        gateway.url + "/ext/v1/messages",
        json.dumps({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "x"}]}).encode(),
        {"x-api-key": key},
    )
    assert status == 400
    assert "max_tokens" in body["error"]["message"]
    key = gateway.keys["dev-openai"]
    status, _, body = post(gateway.url + "/ext/v1/chat/completions", b'{"messages": []}', {"authorization": f"Bearer {key}"})
    assert status == 400
    assert body["error"]["param"] == "model"


def test_unknown_model_suggests_close_matches(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/ext/v1", api_key=gateway.keys["dev-openai"], max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o-mimi", messages=[{"role": "user", "content": "x"}])
    assert "gpt-4o-mini" in str(err.value)
    assert err.value.body["code"] == "model_not_found"


def test_denied_model_is_forbidden(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/ext/v1", api_key=gateway.keys["dev-openai"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "deniedModels" in str(err.value)


def test_missing_key(gateway):
    status, _, body = post(gateway.url + "/ext/v1/chat/completions", b"{}", {})
    assert status == 401
    assert_openai_error(body)
    status, _, body = post(gateway.url + "/ext/v1/messages", b"{}", {})
    assert status == 401
    assert_anthropic_error(body, "authentication_error")


def test_wrong_key_in_both_dialects(gateway):
    oa = openai.OpenAI(base_url=gateway.url + "/ext/v1", api_key="pak_" + "x" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    an = anthropic.Anthropic(base_url=gateway.url + "/ext", api_key="sk-ant-api03-not-a-pai-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        an.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert err.value.body["error"]["type"] == "authentication_error"


def test_external_access_disabled(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/ext/v1", api_key=gateway.keys["dev-closed"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert "externalAccess.enabled" in str(err.value)


def test_body_over_the_limit(gateway):
    key = gateway.keys["dev-openai"]
    big = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"a" * (33 << 20) + b'"}]}'
    status, _, body = post(gateway.url + "/ext/v1/chat/completions", big, {"authorization": f"Bearer {key}"})
    assert status == 413
    assert_openai_error(body)


def test_upstream_down(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/ext/v1", api_key=gateway.keys["dev-down"], max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 502
    assert "unreachable" in str(err.value)


def test_upstream_errors_keep_their_meaning(gateway):
    an = anthropic.Anthropic(base_url=gateway.url + "/ext", api_key=gateway.keys["dev-anthropic"], max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as err:
        an.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x [mock:status=529]"}])
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"
    oa = openai.OpenAI(base_url=gateway.url + "/ext/v1", api_key=gateway.keys["dev-openai"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as err:
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x [mock:status=429,retry_after=7]"}])
    assert err.value.response.headers["retry-after"] == "7"


def test_mid_stream_failure_ends_the_stream_with_an_in_band_error(gateway):
    an = anthropic.Anthropic(base_url=gateway.url + "/ext", api_key=gateway.keys["dev-anthropic"], max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as err:
        with an.messages.stream(
            model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "x [mock:words=10,midstream_error]"}]
        ) as stream:
            for _ in stream.text_stream:
                pass
    assert "overloaded" in str(err.value) or "mock upstream failure" in str(err.value)


def test_hello_probe(gateway):
    req = urllib.request.Request(gateway.url + "/ext/api/hello", method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_unknown_route(gateway):
    status, _, body = post(gateway.url + "/ext/v1/embeddings", b"{}", {"authorization": "Bearer " + gateway.keys["dev-openai"]})
    assert status == 404
    assert_openai_error(body)
