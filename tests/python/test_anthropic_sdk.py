"""The official Anthropic Python SDK through pai to an Anthropic upstream."""

import anthropic
import pytest

from conftest import headers_of, ANTHROPIC_UPSTREAM_KEY


@pytest.fixture()
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url + "/ext", api_key=gateway.keys["dev-anthropic"], max_retries=0)


def test_message(client):
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello [mock:words=9,cached=5,cache_write=2]"}],
    )
    msg = raw.parse()
    assert msg.content[0].text.startswith("mock reply:")
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 9
    assert msg.usage.cache_read_input_tokens == 5
    assert msg.usage.cache_creation_input_tokens == 2
    # x-pai-input-tokens is the whole prompt: input + cache reads + cache writes.
    whole = msg.usage.input_tokens + 5 + 2
    assert raw.headers["x-pai-input-tokens"] == str(whole)
    assert raw.headers["x-pai-output-tokens"] == "9"
    assert raw.headers["x-pai-cached-input-tokens"] == "5"


def test_stream(client):
    with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=200,
        messages=[{"role": "user", "content": "Stream please [mock:words=15,split,crlf]"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("mock reply:")
    assert len(text.split()) == 15
    assert final.usage.output_tokens == 15
    assert final.stop_reason == "end_turn"


def test_wrapped_key_is_accepted(gateway):
    raw_key = gateway.keys["dev-anthropic"]
    wrapped = "sk-ant-api03-pak-" + raw_key[len("pak_"):] + "-AA"
    client = anthropic.Anthropic(base_url=gateway.url + "/ext", api_key=wrapped, max_retries=0)
    msg = client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text


def test_bearer_auth_token_is_accepted(gateway):
    client = anthropic.Anthropic(base_url=gateway.url + "/ext", auth_token=gateway.keys["dev-anthropic"], max_retries=0)
    msg = client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text


def test_count_tokens(client):
    count = client.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "count these words please"}]
    )
    assert count.input_tokens > 0


def test_count_tokens_on_an_openai_provider_is_501_in_anthropic_shape(gateway):
    client = anthropic.Anthropic(base_url=gateway.url + "/ext", api_key=gateway.keys["dev-openai"], max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as err:
        client.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 501
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "api_error"


def test_models_in_anthropic_shape(client):
    page = client.models.list()
    assert sorted(m.id for m in page.data) == ["claude-haiku-4-5", "claude-sonnet-4-6"]
    assert all(m.type == "model" for m in page.data)


def test_upstream_saw_the_real_key(client, mock):
    client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    seen = [r for r in mock.requests() if r["path"] == "/v1/messages"]
    assert seen
    for r in seen:
        headers = headers_of(r)
        assert headers["x-api-key"] == ANTHROPIC_UPSTREAM_KEY
        # The client's anthropic-version is forwarded as sent.
        assert headers["anthropic-version"]
        assert "authorization" not in headers
        assert "pak" not in str(r["headers"])
