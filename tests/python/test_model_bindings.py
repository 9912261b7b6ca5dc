"""ModelBindings as users of the older API write them: `spec.provider` a provider *type*, called
directly with the binding's own key, no ModelProvider at all. The documented commands verbatim,
an agent listing the bindings, both SDKs, the fallback when the first binding's day is spent,
and what `pai get` and `pai status` show right after each call (no waiting, no polling)."""

import json
import subprocess

import anthropic
import openai
import pytest

from conftest import ANTHROPIC_UPSTREAM_KEY, GEMINI_UPSTREAM_KEY, PAI
from pai_server import Server, table


def run(server: Server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PAI, *args], capture_output=True, text=True, env=server.env, timeout=60)


@pytest.fixture(scope="module")
def server(mock, tmp_path_factory, logs_dir):
    # The bindings call provider types at their public endpoints; here those are the mock.
    s = Server(
        "bindings", tmp_path_factory.mktemp("bindings-data"), logs_dir,
        "--provider-endpoint", f"gemini={mock.url}", "--provider-endpoint", f"anthropic={mock.url}",
    )
    yield s
    s.close()


@pytest.fixture(scope="module")
def documented(server):
    """The documented commands, verbatim (but for the key's value)."""
    server.cli("add", "secret", "gemini-key", "--from-literal", f"api-key={GEMINI_UPSTREAM_KEY}")
    added = run(
        server, "add", "model", "gemini-flash", "--provider", "gemini", "--api-key", "gemini-key",
        "--max-tokens-day", "1000000", "--max-tokens-request", "32000",
    )
    return added


def test_the_documented_commands_make_a_binding_that_calls_the_provider_type(server, documented):
    assert documented.returncode == 0, documented.stderr
    assert "gemini-flash" in documented.stdout
    # Before: "names ModelProvider "gemini", which does not exist" and "names key "token" of
    # Secret "gemini-key", which has no such key". Now neither: gemini is a provider type and
    # the Secret's only key is the one used.
    assert "does not exist" not in documented.stderr, documented.stderr
    assert "no such key" not in documented.stderr, documented.stderr
    # The model defaults to the name, which pai's catalogue does not know: said, not refused.
    assert "not in pai's gemini catalogue" in documented.stderr and "gemini-2.0-flash" in documented.stderr

    item = json.loads(server.cli("get", "model", "gemini-flash", "-o", "json"))
    assert item["spec"]["apiKeySecretRef"] == {"name": "gemini-key", "key": "api-key"}
    assert item["spec"]["maxTokensPerDay"] == 1_000_000 and item["spec"]["maxTokensPerRequest"] == 32_000
    assert item["calls"] == {"via": "provider-type", "provider": "gemini"}
    rows = {r["NAME"]: r for r in table(server.cli("get", "models"))}
    assert rows["gemini-flash"]["PROVIDER"] == "gemini (provider type)"
    assert rows["gemini-flash"]["MAX/DAY"] == "1,000,000"
    assert rows["gemini-flash"]["MAX/REQUEST"] == "32,000"


def test_a_binding_that_can_never_be_called_is_refused(server, documented):
    cases = [
        (["--provider", "gemini", "--api-key", "no-such-secret"], 'Secret "no-such-secret", which does not exist'),
        (["--provider", "gemini"], "needs its own key"),
        (["--provider", "gemni", "--api-key", "gemini-key"], "neither an existing ModelProvider nor a provider type"),
        (["--provider", "vllm", "--api-key", "gemini-key"], "no public endpoint"),
    ]
    for flags, why in cases:
        r = run(server, "add", "model", "broken", *flags)
        assert r.returncode != 0, (flags, r.stdout)
        assert why in r.stderr, (flags, r.stderr)
    server.cli("add", "secret", "two-keys", "--from-literal", "a=1", "--from-literal", "b=2")
    r = run(server, "add", "model", "broken", "--provider", "gemini", "--api-key", "two-keys")
    assert r.returncode != 0 and 'key "token"' in r.stderr and "(it has a, b)" in r.stderr, r.stderr
    assert "broken" not in server.cli("get", "models")


@pytest.fixture(scope="module")
def agent(server, documented):
    """The binding given its real model, a second binding, and an agent listing both."""
    server.cli(
        "add", "model", "gemini-flash", "--provider", "gemini", "--api-key", "gemini-key",
        "--model", "gemini-2.0-flash", "--max-tokens-day", "1000000", "--max-tokens-request", "32000",
    )
    server.cli("add", "secret", "anthropic-key", "--from-literal", f"token={ANTHROPIC_UPSTREAM_KEY}")
    server.cli("add", "model", "claude-sonnet", "--provider", "anthropic", "--api-key", "anthropic-key",
               "--model", "claude-sonnet-4-6")
    server.apply("""
apiVersion: pai.io/v1
kind: Agent
metadata: {name: support-bot}
spec:
  modelBindings: [gemini-flash, claude-sonnet]
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: tiny-bot}
spec:
  modelBindings: [claude-sonnet]
  rateLimits: {maxCostPerDayUSD: 0.001}
""")
    server.mint("bot-key", "--agent", "support-bot")
    return server


def metrics(server) -> dict:
    return json.loads(server.cli("get", "metrics", "-o", "json"))


def status_lines(server, agent: str) -> list[str]:
    return server.cli("status", agent).splitlines()


def test_both_sdks_through_both_bindings_then_the_fallback_and_the_status(agent, mock):
    server = agent
    key = server.keys["bot-key"]
    oai = openai.OpenAI(base_url=server.url + "/ext/v1", api_key=key, max_retries=0)
    ant = anthropic.Anthropic(base_url=server.url + "/ext", api_key=key, max_retries=0)
    gemini_tokens = 0
    sonnet_tokens = 0
    mock.reset()

    # OpenAI SDK → gemini-flash: pai translates to Gemini and calls it with the binding's key.
    raw = oai.chat.completions.with_raw_response.create(
        model="gemini-flash", messages=[{"role": "user", "content": "Hello [mock:words=12]"}], max_tokens=50,
    )
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert "x-pai-fell-back-from" not in raw.headers
    gemini_tokens += answer.usage.total_tokens
    sent = mock.requests()
    assert any("gemini-2.0-flash" in r["path"] for r in sent), [r["path"] for r in sent]

    # At once, not a second or two later: the call is in `pai get metrics` and TOKENS TODAY.
    m = metrics(server)
    assert [(p["name"], p["requests"]) for p in m["providers"]] == [("gemini", 1)], m
    keys = {r["NAME"]: r for r in table(server.cli("get", "access-keys"))}
    assert keys["bot-key"]["TOKENS TODAY"] == f"{gemini_tokens:,}"

    # Anthropic SDK → claude-sonnet (same dialect), then → gemini-flash (translated), streamed.
    msg = ant.messages.create(
        model="claude-sonnet", max_tokens=50, messages=[{"role": "user", "content": "Hi [mock:words=8]"}],
    )
    assert msg.content[0].text
    sonnet_tokens += msg.usage.input_tokens + msg.usage.output_tokens
    with ant.messages.stream(
        model="gemini-flash", max_tokens=50, messages=[{"role": "user", "content": "Hi [mock:words=8]"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text
    gemini_tokens += final.usage.input_tokens + final.usage.output_tokens

    m = metrics(server)
    assert {p["name"]: p["requests"] for p in m["providers"]} == {"gemini": 2, "anthropic": 1}, m
    lines = status_lines(server, "support-bot")
    assert lines[1:] == [
        f"gemini-flash (gemini / gemini-2.0-flash) — {gemini_tokens:,} / 1,000,000 tokens today",
        f"claude-sonnet (anthropic / claude-sonnet-4-6) — {sonnet_tokens:,} tokens today",
        lines[3],
    ], lines
    assert lines[3].startswith("cost — $") and lines[3].endswith("today (no daily cap)"), lines

    # gemini-flash's day is now all but spent: the next call it cannot fit goes to claude-sonnet.
    cap = gemini_tokens + 10
    server.cli(
        "add", "model", "gemini-flash", "--provider", "gemini", "--api-key", "gemini-key",
        "--model", "gemini-2.0-flash", "--max-tokens-day", str(cap), "--max-tokens-request", "32000",
    )
    raw = oai.chat.completions.with_raw_response.create(
        model="gemini-flash", messages=[{"role": "user", "content": "Again [mock:words=12]"}], max_tokens=50,
    )
    answer = raw.parse()
    assert raw.headers["x-pai-fell-back-from"] == "gemini/gemini-2.0-flash"
    assert answer.choices[0].message.content
    sonnet_tokens += answer.usage.total_tokens

    lines = status_lines(server, "support-bot")
    assert lines[1] == f"gemini-flash (gemini / gemini-2.0-flash) — {gemini_tokens:,} / {cap:,} tokens today", lines
    assert lines[2] == f"claude-sonnet (anthropic / claude-sonnet-4-6) — {sonnet_tokens:,} tokens today", lines
    m = metrics(server)
    assert {p["name"]: p["requests"] for p in m["providers"]} == {"gemini": 2, "anthropic": 2}, m


def test_a_cost_cap_below_a_cent_shows_its_digits(agent):
    rows = {r["NAME"]: r for r in table(agent.cli("get", "agents"))}
    assert rows["tiny-bot"]["MAX COST/DAY"] == "$0.001"
    assert status_lines(agent, "tiny-bot")[-1] == "cost — $0.000000 / $0.001 today"
