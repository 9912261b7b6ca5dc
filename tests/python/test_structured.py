"""Structured output and reasoning across dialects, judged by what the SDKs hand the user.

- LangChain's `ChatOpenAI(...).with_structured_output(Model, method=...)` for `json_schema`,
  `json_mode` and `function_calling`, and the OpenAI SDK's
  `client.chat.completions.parse(response_format=Model)`, against OpenAI, Anthropic and Gemini
  providers: the parsed object is a `Model` with the values the mock built from the schema.
- The Anthropic SDK with `output_config.format` against OpenAI and Gemini providers.
- Reasoning effort both ways, with the thinking and its tokens carried back, whole and streamed.
- The `: pai-usage` comment comes right before the stream's last event, in every direction.
"""

from __future__ import annotations

import json
import uuid

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel

from pai_server import eventually
from test_matrix import PROVIDERS, anthropic_client, matrix, openai_client, upstream_call  # noqa: F401

KINDS = ["openai", "anthropic", "gemini"]


class Pet(BaseModel):
    kind: str
    legs: int


class Person(BaseModel):
    name: str
    age: int
    pets: list[Pet]


# What the mock builds from Person's schema: "mock <field>" strings, 42 for integers, one item.
EXPECTED = Person(name="mock name", age=42, pets=[Pet(kind="mock kind", legs=42)])


def model_of(kind: str) -> str:
    return PROVIDERS[kind][3]


def nonce() -> str:
    return uuid.uuid4().hex[:12]


@pytest.mark.parametrize("kind", KINDS)
def test_openai_sdk_parse_gives_the_pydantic_object(gateway, mock, matrix, kind):
    n = nonce()
    client = openai_client(gateway, matrix[kind])
    completion = client.chat.completions.parse(
        model=model_of(kind),
        messages=[{"role": "user", "content": f"Describe a person {n}"}],
        response_format=Person,
    )
    assert completion.choices[0].message.parsed == EXPECTED
    sent = upstream_call(mock, n)["json"]
    if kind == "anthropic":
        schema = sent["output_config"]["format"]["schema"]
        assert schema["additionalProperties"] is False and set(schema["required"]) == {"name", "age", "pets"}
    elif kind == "gemini":
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
        assert "Pet" in json.dumps(sent["generationConfig"]["responseJsonSchema"])
    else:
        assert sent["response_format"]["json_schema"]["strict"] is True


@pytest.mark.parametrize("method", ["json_schema", "json_mode", "function_calling"])
@pytest.mark.parametrize("kind", KINDS)
def test_langchain_with_structured_output(gateway, mock, matrix, kind, method):
    from langchain_openai import ChatOpenAI

    n = nonce()
    llm = ChatOpenAI(
        base_url=gateway.url + "/ext/v1", api_key=matrix[kind], model=model_of(kind), max_retries=0
    )
    prompt = f"Describe a person {n}."
    if method == "json_mode":
        # JSON mode carries no schema: the prompt says what the object must hold, as users do.
        prompt += " Answer in JSON following this schema: " + json.dumps(Person.model_json_schema())
    result = llm.with_structured_output(Person, method=method).invoke(prompt)
    assert result == EXPECTED
    sent = upstream_call(mock, n)["json"]
    if method == "function_calling" and kind == "anthropic":
        assert (sent["tool_choice"]["type"], sent["tool_choice"]["name"]) == ("tool", "Person")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_anthropic_sdk_output_config_format(gateway, mock, matrix, kind, stream):
    n = nonce()
    client = anthropic_client(gateway, matrix[kind])
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    args = dict(
        model=model_of(kind),
        max_tokens=300,
        messages=[{"role": "user", "content": f"A city {n}"}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    if stream:
        with client.messages.stream(**args) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**args)
    text = "".join(b.text for b in message.content if b.type == "text")
    assert json.loads(text) == {"city": "mock city", "population": 42}
    assert message.stop_reason == "end_turn"
    sent = upstream_call(mock, n)["json"]
    if kind == "openai":
        assert sent["response_format"]["json_schema"]["schema"] == schema
        assert sent["response_format"]["json_schema"]["strict"] is True
    else:
        assert sent["generationConfig"]["responseJsonSchema"] == schema


def test_a_schema_anthropic_cannot_enforce_is_refused_in_the_clients_dialect(gateway, matrix):
    client = openai_client(gateway, matrix["anthropic"])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=model_of("anthropic"),
            messages=[{"role": "user", "content": "x"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "Free", "schema": {"type": "object", "properties": {"extra": {}}}},
            },
        )
    assert "schema.properties.extra" in e.value.message
    assert e.value.body["param"] == "response_format"


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_reasoning_effort_from_openai_clients_shows_thinking_and_counts_its_tokens(gateway, mock, matrix, kind):
    n = nonce()
    client = openai_client(gateway, matrix[kind])
    completion = client.chat.completions.create(
        model=model_of(kind),
        messages=[{"role": "user", "content": f"Think {n} [mock:words=3]"}],
        reasoning_effort="medium",
        max_completion_tokens=20000,
    )
    sent = upstream_call(mock, n)["json"]
    if kind == "anthropic":
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
        assert sent["max_tokens"] == 20000
    else:
        assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 4096, "includeThoughts": True}
    thinking_words = 16  # the mock thinks one word per 256 tokens of budget
    message = completion.choices[0].message
    assert message.content == "mock reply: alpha"
    assert message.model_extra["reasoning_content"].startswith("Thinking step1")
    assert completion.usage.completion_tokens_details.reasoning_tokens == thinking_words
    assert completion.usage.completion_tokens == 3 + thinking_words



@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_thinking_from_anthropic_clients_becomes_effort_and_comes_back_as_blocks(gateway, mock, matrix, kind):
    n = nonce()
    client = anthropic_client(gateway, matrix[kind])
    message = client.messages.create(
        model=model_of(kind),
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": f"Think {n} [mock:words=3]"}],
    )
    sent = upstream_call(mock, n)["json"]
    if kind == "openai":
        assert sent["reasoning_effort"] == "medium"
        words = 8  # the mock's words for medium effort
    else:
        assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
        words = 8  # one per 256 tokens
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking.startswith("Thinking step1")
    assert message.content[1].text == "mock reply: alpha"
    assert message.usage.output_tokens == 3 + words
    assert message.usage.output_tokens_details.thinking_tokens == words


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_streamed_reasoning_reaches_openai_clients_before_the_content_with_its_tokens(gateway, mock, matrix, kind):
    n = nonce()
    client = openai_client(gateway, matrix[kind])
    stream = client.chat.completions.create(
        model=model_of(kind),
        messages=[{"role": "user", "content": f"Think {n} [mock:words=3]"}],
        reasoning_effort="medium",
        max_completion_tokens=20000,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            reasoning = (choice.delta.model_extra or {}).get("reasoning_content")
            if reasoning:
                pieces.append(("reasoning", reasoning))
            if choice.delta.content:
                pieces.append(("content", choice.delta.content))
    call = upstream_call(mock, n)
    if kind == "anthropic":
        assert call["json"]["stream"] is True and call["json"]["thinking"]["type"] == "enabled"
    else:
        assert call["path"].endswith(":streamGenerateContent")
        assert call["json"]["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
    thinking_words = 16  # the effort's 4096-token budget, one word per 256 tokens
    kinds = [k for k, _ in pieces]
    assert kinds == ["reasoning"] * kinds.count("reasoning") + ["content"] * kinds.count("content"), kinds
    reasoning = "".join(t for k, t in pieces if k == "reasoning")
    assert reasoning.startswith("Thinking step1") and reasoning.endswith(f" step{thinking_words - 1}")
    assert "".join(t for k, t in pieces if k == "content") == "mock reply: alpha"
    assert usage is not None
    assert usage.completion_tokens_details.reasoning_tokens == thinking_words
    assert usage.completion_tokens == 3 + thinking_words


@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_streamed_thinking_reaches_anthropic_clients_as_a_first_block_with_its_tokens(gateway, mock, matrix, kind):
    n = nonce()
    client = anthropic_client(gateway, matrix[kind])
    with client.messages.stream(
        model=model_of(kind),
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": f"Think {n} [mock:words=3]"}],
    ) as stream:
        events = list(stream)
        message = stream.get_final_message()
    sent = upstream_call(mock, n)["json"]
    if kind == "openai":
        assert sent["reasoning_effort"] == "medium" and sent["stream"] is True
    else:
        assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
    words = 8  # medium effort, or 2048 tokens at one word per 256
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text"]
    thinking = "".join(e.delta.thinking for e in events
                       if e.type == "content_block_delta" and e.delta.type == "thinking_delta")
    assert thinking.startswith("Thinking step1") and thinking.endswith(f" step{words - 1}")
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == thinking
    assert message.content[1].text == "mock reply: alpha"
    assert message.usage.output_tokens == 3 + words
    assert message.usage.output_tokens_details.thinking_tokens == words


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_stream_cut_during_its_reasoning_is_charged_for_the_reasoning_it_delivered(gateway, matrix, kind):
    name = f"think-cut-{kind}-{nonce()}"
    client = openai_client(gateway, gateway.mint(name, f"mx-{kind}"))
    received = []
    with pytest.raises(openai.APIError):
        # Medium effort thinks 8 words; the upstream goes away after 5 of them, before any answer.
        for chunk in client.chat.completions.create(
            model=model_of(kind),
            messages=[{"role": "user", "content": "Think [mock:words=3,reset_after=5]"}],
            reasoning_effort="medium",
            max_completion_tokens=20000,
            stream=True,
        ):
            for choice in chunk.choices:
                received.append((choice.delta.model_extra or {}).get("reasoning_content") or "")
                assert not choice.delta.content
    assert "".join(received) == "Thinking step1 step2 step3 step4"
    def recorded():
        rows = [r for r in gateway.admin_get("/admin/v1/usage")["items"] if r["access_key"] == name]
        return rows or None

    rows = eventually(recorded, what=f"the call of {name} recorded")
    # At least a token for each reasoning delta the client got.
    assert rows[0]["usage"]["output"] >= 5, rows


# === the pai-usage comment ===

DIRECTIONS = [(c, k) for c in ("openai", "anthropic") for k in KINDS if c != k or k == "gemini"]


@pytest.mark.parametrize("client,kind", DIRECTIONS, ids=[f"{c}-to-{k}" for c, k in DIRECTIONS])
def test_the_usage_comment_comes_right_before_the_last_event(gateway, matrix, client, kind):
    key = matrix[kind]
    prompt = "Stream [mock:words=4]"
    if client == "openai":
        url = gateway.url + "/ext/v1/chat/completions"
        headers = {"authorization": f"Bearer {key}"}
        body = {"model": model_of(kind), "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": prompt}]}
        last = "data: [DONE]"
    else:
        url = gateway.url + "/ext/v1/messages"
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        body = {"model": model_of(kind), "stream": True, "max_tokens": 100,
                "messages": [{"role": "user", "content": prompt}]}
        last = "event: message_stop"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as r:
        assert r.status_code == 200
        events = [e for e in r.read().decode().split("\n\n") if e.strip()]
    comments = [i for i, e in enumerate(events) if e.startswith(": pai-usage ")]
    assert len(comments) == 1, events
    assert events[-1].startswith(last), events[-3:]
    assert comments[0] == len(events) - 2, events[-3:]
    assert json.loads(events[comments[0]][len(": pai-usage "):])["output_tokens"] == 4
