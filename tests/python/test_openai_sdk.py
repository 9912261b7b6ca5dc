"""The official OpenAI Python SDK through pai to an OpenAI-compatible upstream."""

import openai
import pytest

from conftest import headers_of, OPENAI_UPSTREAM_KEY


@pytest.fixture()
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/ext/v1", api_key=gateway.keys["dev-openai"], max_retries=0)


def test_chat_completion(client, mock):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello [mock:words=12]"}],
    )
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert text.startswith("mock reply:")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    # The mock counts one token per word of its reply.
    assert completion.usage.completion_tokens == 12 == len(text.split())
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 12
    # pai's own headers agree with the usage the client got.
    assert raw.headers["x-pai-input-tokens"] == str(completion.usage.prompt_tokens)
    assert raw.headers["x-pai-output-tokens"] == "12"
    assert raw.headers["x-pai-model-id"] == "gpt-4o-mini"
    assert raw.headers["x-pai-call-id"].startswith("call_")
    assert int(raw.headers["x-pai-duration-ms"]) >= 0


def test_stream_without_usage_gets_no_usage_chunk(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream please [mock:words=20,split]"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("mock reply:")
    assert len(text.split()) == 20
    # pai asked upstream for usage, but the client did not: it must not see it.
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_with_usage(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream please [mock:words=7,delay_ms=5]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1
    assert usage_chunks[0].choices == []
    assert usage_chunks[0].usage.completion_tokens == 7
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 7


def test_cached_tokens_are_reported(client):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "cache me [mock:cached=3]"}],
    )
    completion = raw.parse()
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    assert raw.headers["x-pai-cached-input-tokens"] == "3"
    assert raw.headers["x-pai-input-tokens"] == str(completion.usage.prompt_tokens)


def test_models_lists_what_the_key_may_use(client):
    ids = sorted(m.id for m in client.models.list())
    assert ids == ["gpt-4o-mini", "meta/llama-3.1-8b-instruct"]


def test_model_ids_with_slashes_pass_through(client, mock):
    completion = client.chat.completions.create(
        model="meta/llama-3.1-8b-instruct", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.model == "meta/llama-3.1-8b-instruct"


def test_upstream_saw_the_real_key_and_never_the_access_key(client, gateway, mock):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "who am i"}])
    # The OpenAI routes only: Azure's (from test_matrix) take the key as `api-key`.
    seen = [r for r in mock.requests() if r["path"] in ("/v1/chat/completions", "/chat/completions")]
    assert seen
    for r in seen:
        headers = headers_of(r)
        assert headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"
        assert "pak_" not in str(r["headers"])
        assert "x-api-key" not in headers
        assert headers.get("accept-encoding", "identity") == "identity"
