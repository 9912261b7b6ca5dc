"""What calls cost: x-pai-cost-usd, the stream's pai-usage comment, and a hot-reloaded price file."""

import json
import time

import anthropic
import httpx
import openai
import pytest

from pai_server import Server, base_resources, usd

# List prices of claude-sonnet-4-6, USD per million tokens, as pico-USD per token.
SONNET_IN, SONNET_OUT = 3_000_000, 15_000_000

FIRST_PRICES = 'gateway:\n  modelPrices:\n    "some-other-model": {input: 1.00, output: 2.00}\n'


@pytest.fixture(scope="module")
def prices_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prices") / "prices.yaml"
    path.write_text(FIRST_PRICES)
    return path


@pytest.fixture(scope="module")
def server(mock, tmp_path_factory, logs_dir, prices_file):
    s = Server("costs", tmp_path_factory.mktemp("costs-data"), logs_dir, "--prices", str(prices_file))
    s.apply(base_resources(mock.url))
    s.mint("cost-anthropic", "--model-provider", "local-anthropic")
    s.mint("cost-vllm", "--model-provider", "local-vllm")
    yield s
    s.close()


@pytest.fixture()
def claude(server):
    return anthropic.Anthropic(base_url=server.url + "/ext", api_key=server.keys["cost-anthropic"], max_retries=0)


def ask(claude, words=12):
    raw = claude.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        messages=[{"role": "user", "content": f"What does it cost? [mock:words={words}]"}],
    )
    return raw, raw.parse()


def price_file_errors(server) -> float:
    for line in server.metrics_text().splitlines():
        if line.startswith("pai_price_file_errors_total"):
            return float(line.split()[-1])
    return 0.0


def test_a_buffered_answer_carries_its_exact_cost(server, claude):
    raw, msg = ask(claude)
    pico = msg.usage.input_tokens * SONNET_IN + msg.usage.output_tokens * SONNET_OUT
    assert raw.headers["x-pai-cost-usd"] == usd(pico)
    # The call record carries the same figure, exactly.
    rows = server.usage_rows("cost-anthropic", 1)
    assert len(rows) == 1 and rows[0]["requests"] == 1, rows
    assert rows[0]["cost_pico_usd"] == pico
    assert rows[0]["costUsd"] == usd(pico)


def test_an_unpriced_model_has_tokens_but_no_cost(server):
    client = openai.OpenAI(base_url=server.url + "/ext/v1", api_key=server.keys["cost-vllm"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="meta/llama-3.1-8b-instruct", messages=[{"role": "user", "content": "hi [mock:words=5]"}]
    )
    completion = raw.parse()
    assert completion.usage.completion_tokens == 5
    assert raw.headers["x-pai-output-tokens"] == "5"
    assert "x-pai-cost-usd" not in raw.headers
    rows = server.usage_rows("cost-vllm", 1)
    assert rows[0]["usage"]["output"] == 5 and rows[0]["cost_pico_usd"] == 0 and rows[0]["costUsd"] == "0.000000"


def test_a_stream_reports_its_cost_in_the_pai_usage_comment(server):
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 200,
        "stream": True,
        "messages": [{"role": "user", "content": "Stream the cost [mock:words=10]"}],
    }
    headers = {"x-api-key": server.keys["cost-anthropic"], "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", server.url + "/ext/v1/messages", json=body, headers=headers, timeout=30) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())
    comments = [line for line in lines if line.startswith(": pai-usage ")]
    assert len(comments) == 1, lines
    usage = json.loads(comments[0][len(": pai-usage "):])
    assert usage["output_tokens"] == 10
    pico = usage["input_tokens"] * SONNET_IN + usage["output_tokens"] * SONNET_OUT
    assert usage["cost_usd"] == usd(pico)
    # It comes before the final event, so a client that stops at message_stop still sees it.
    assert lines.index(comments[0]) < lines.index("event: message_stop")


def test_an_edited_price_file_applies_without_restart_and_a_broken_edit_keeps_the_last_good_one(
    server, claude, prices_file
):
    prices_file.write_text('gateway:\n  modelPrices:\n    "claude-sonnet-4-6": {input: 6.00, output: 30.00}\n')
    deadline = time.monotonic() + 5
    while True:
        raw, msg = ask(claude)
        doubled = 2 * (msg.usage.input_tokens * SONNET_IN + msg.usage.output_tokens * SONNET_OUT)
        if raw.headers["x-pai-cost-usd"] == usd(doubled):
            break
        assert time.monotonic() < deadline, f"price file not applied within 5 s: {raw.headers['x-pai-cost-usd']}"
        time.sleep(0.2)

    prices_file.write_text('gateway:\n  modelPrices:\n    "claude-sonnet-4-6": {input: [oops\n')
    # The watcher looks once a second; give it a few looks at the broken file.
    deadline = time.monotonic() + 10
    while price_file_errors(server) < 1:
        assert time.monotonic() < deadline, "the broken price file was never read"
        time.sleep(0.2)
    raw, msg = ask(claude)
    doubled = 2 * (msg.usage.input_tokens * SONNET_IN + msg.usage.output_tokens * SONNET_OUT)
    assert raw.headers["x-pai-cost-usd"] == usd(doubled)
