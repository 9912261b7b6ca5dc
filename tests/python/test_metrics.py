"""GET /metrics (Prometheus text, no token) and `pai get metrics` after real calls."""

import json
import re

import anthropic
import pytest

from conftest import ADMIN_TOKEN, ANTHROPIC_UPSTREAM_KEY, OPENAI_UPSTREAM_KEY
from pai_server import Server, base_resources, table, usd

SONNET_IN, SONNET_OUT = 3_000_000, 15_000_000


@pytest.fixture(scope="module")
def server(mock, tmp_path_factory, logs_dir):
    s = Server("metrics", tmp_path_factory.mktemp("metrics-data"), logs_dir)
    s.apply(base_resources(mock.url))
    s.mint("metrics-key", "--model-provider", "local-anthropic")
    yield s
    s.close()


@pytest.fixture(scope="module")
def calls(server):
    """Two calls, one buffered and one streamed: their usage as the SDK saw it."""
    client = anthropic.Anthropic(base_url=server.url + "/ext", api_key=server.keys["metrics-key"], max_retries=0)
    usages = []
    msg = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "Count me [mock:words=7,cached=3]"}],
    )
    usages.append(msg.usage)
    with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "Stream and count me [mock:words=11]"}],
    ) as stream:
        usages.append(stream.get_final_message().usage)
    server.usage_rows("metrics-key", 2)
    return usages


def series(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{want}}} in\n{text}")


def test_metrics_count_requests_tokens_and_cost_and_carry_no_key(server, calls):
    text = server.metrics_text()
    who = {"workload": "ext:metrics-key", "model": "claude-sonnet-4-6"}
    inputs = sum(u.input_tokens for u in calls)
    outputs = sum(u.output_tokens for u in calls)
    cached = sum(u.cache_read_input_tokens or 0 for u in calls)
    assert series(text, "pai_requests_total", **who, status="200") == 2
    assert series(text, "pai_tokens_total", **who, kind="input") == inputs
    assert series(text, "pai_tokens_total", **who, kind="cached_input") == cached
    assert series(text, "pai_tokens_total", **who, kind="output") == outputs
    assert series(text, "pai_cost_usd_total", **who, kind="input") == pytest.approx(inputs * 3 / 1e6)
    assert series(text, "pai_cost_usd_total", **who, kind="output") == pytest.approx(outputs * 15 / 1e6)
    assert "# TYPE pai_request_duration_seconds histogram" in text

    key = server.keys["metrics-key"]
    body = key[len("pak_"):]
    for secret in [key, body, f"sk-ant-api03-pak-{body}-AA", ANTHROPIC_UPSTREAM_KEY, OPENAI_UPSTREAM_KEY, ADMIN_TOKEN]:
        assert secret not in text
    # Only names: every workload label is ext:<name> or an agent's name.
    for workload in re.findall(r'workload="([^"]*)"', text):
        assert workload == "ext:metrics-key", workload


def test_pai_get_metrics_shows_todays_tokens_and_cost(server, calls):
    inputs = sum(u.input_tokens + (u.cache_creation_input_tokens or 0) for u in calls)
    cached = sum(u.cache_read_input_tokens or 0 for u in calls)
    outputs = sum(u.output_tokens for u in calls)
    # claude-sonnet-4-6 reads its cache at $0.30 per million.
    pico = inputs * SONNET_IN + cached * 300_000 + outputs * SONNET_OUT

    out = server.cli("get", "metrics")
    providers_text, keys_text = out.split("\n\n")
    providers = {r["PROVIDER"]: r for r in table(providers_text)}
    keys = {r["ACCESS KEY"]: r for r in table(keys_text)}
    want = {"REQUESTS": "2", "INPUT": f"{inputs:,}", "CACHED": f"{cached:,}", "OUTPUT": f"{outputs:,}", "COST": "$" + usd(pico)}
    assert {k: providers["local-anthropic"][k] for k in want} == want, out
    assert {k: keys["metrics-key"][k] for k in want} == want, out
    assert keys["metrics-key"]["PROVIDERS"] == "local-anthropic"

    as_json = json.loads(server.cli("get", "metrics", "-o", "json"))
    assert as_json["accessKeys"][0]["costPicoUsd"] == pico
    assert as_json["accessKeys"][0]["costUsd"] == usd(pico)
