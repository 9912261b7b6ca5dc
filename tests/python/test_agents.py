"""An Agent whose first model's provider runs out of its day: the next model answers, translated,
and `pai status` / `pai get agents` show what each model and the agent used."""

import anthropic
import pytest

from conftest import ANTHROPIC_UPSTREAM_KEY
from pai_server import Server, base_resources, table, usd

# Pico-USD per token (list prices): claude-sonnet-4-6 $3/$15, gpt-4o-mini $0.15/$0.60,
# claude-haiku-4-5 $1/$5 per million.
PRICE = {
    "claude-sonnet-4-6": (3_000_000, 15_000_000),
    "gpt-4o-mini": (150_000, 600_000),
    "claude-haiku-4-5": (1_000_000, 5_000_000),
}

# Room for one call: it reserves its estimated input plus max_tokens (a few dozen + 60) and
# uses ~70, after which no second reservation fits.
ANTHROPIC_DAY = 150


def agent_resources(mock_url: str) -> str:
    return base_resources(mock_url, anthropic_max_per_day=ANTHROPIC_DAY) + f"""
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: bound-anthropic}}
spec:
  provider: anthropic
  endpoint: {mock_url}
  apiKeySecretRef: {{name: anthropic-upstream}}
  allowedModels: [claude-haiku-4-5]
---
apiVersion: pai.io/v1
kind: ModelBinding
metadata: {{name: quick-haiku}}
spec: {{provider: bound-anthropic, model: claude-haiku-4-5, maxTokensPerDay: 100000}}
---
apiVersion: pai.io/v1
kind: Agent
metadata: {{name: support-bot}}
spec:
  models: [local-anthropic/claude-sonnet-4-6, local-openai/gpt-4o-mini]
  modelBindings: [quick-haiku]
  rateLimits: {{maxCostPerDayUSD: 5}}
"""


@pytest.fixture(scope="module")
def server(mock, tmp_path_factory, logs_dir):
    s = Server("agents", tmp_path_factory.mktemp("agents-data"), logs_dir)
    s.apply(agent_resources(mock.url))
    s.mint("bot-key", "--agent", "support-bot")
    yield s
    s.close()


@pytest.fixture(scope="module")
def bot(server):
    return anthropic.Anthropic(base_url=server.url + "/ext", api_key=server.keys["bot-key"], max_retries=0)


def ask(bot, model: str):
    raw = bot.messages.with_raw_response.create(
        model=model, max_tokens=60, messages=[{"role": "user", "content": "Help me [mock:words=60]"}]
    )
    return raw, raw.parse()


def pico(model: str, usage) -> int:
    p_in, p_out = PRICE[model]
    return usage.input_tokens * p_in + usage.output_tokens * p_out


@pytest.fixture(scope="module")
def spent(server, bot):
    """The calls of the scenario, and the tokens and cost of each model as the client saw them."""
    tokens = {"claude-sonnet-4-6": 0, "gpt-4o-mini": 0, "claude-haiku-4-5": 0}
    cost = 0

    raw, msg = ask(bot, "local-anthropic/claude-sonnet-4-6")
    assert raw.headers["x-pai-model-id"] == "claude-sonnet-4-6"
    assert "x-pai-fell-back-from" not in raw.headers
    tokens["claude-sonnet-4-6"] += msg.usage.input_tokens + msg.usage.output_tokens
    cost += pico("claude-sonnet-4-6", msg.usage)

    for _ in range(2):
        raw, msg = ask(bot, "local-anthropic/claude-sonnet-4-6")
        assert raw.headers["x-pai-fell-back-from"] == "local-anthropic/claude-sonnet-4-6"
        assert raw.headers["x-pai-model-id"] == "gpt-4o-mini"
        # Answered by an OpenAI-dialect upstream, handed back in Anthropic's shape.
        assert msg.type == "message" and msg.role == "assistant"
        assert msg.content[0].type == "text" and msg.content[0].text.startswith("mock reply:")
        assert msg.stop_reason == "end_turn"
        assert msg.usage.output_tokens == 60
        tokens["gpt-4o-mini"] += msg.usage.input_tokens + msg.usage.output_tokens
        cost += pico("gpt-4o-mini", msg.usage)

    raw, msg = ask(bot, "quick-haiku")
    assert raw.headers["x-pai-model-id"] == "claude-haiku-4-5"
    tokens["claude-haiku-4-5"] += msg.usage.input_tokens + msg.usage.output_tokens
    cost += pico("claude-haiku-4-5", msg.usage)

    spent = server.budget("model-binding", "quick-haiku")["spent"]
    assert spent == tokens["claude-haiku-4-5"], spent
    return tokens, cost


def test_the_fallback_reached_the_openai_upstream_with_its_own_key(mock, spent):
    upstream = [r for r in mock.requests() if r["path"].endswith("/chat/completions") and "Help me" in str(r.get("body"))]
    assert upstream, "no call reached the OpenAI-dialect upstream"
    for r in mock.requests():
        assert ANTHROPIC_UPSTREAM_KEY not in str(r.get("headers")) or not r["path"].endswith("/chat/completions")


def test_pai_status_shows_each_model_and_the_dollar_cap(server, spent):
    tokens, cost = spent
    sonnet = tokens["claude-sonnet-4-6"]

    # At once: pai status answers with every call that has finished.
    out = server.cli("status", "support-bot")
    assert f"local-openai/gpt-4o-mini — {tokens['gpt-4o-mini']:,} tokens today" in out, out
    lines = out.splitlines()
    assert lines[0].startswith("agent/support-bot — today since 00:00 UTC, resets in ")
    assert lines[1] == (
        f"local-anthropic/claude-sonnet-4-6 — {sonnet:,} tokens today "
        f"(ModelProvider local-anthropic: {sonnet:,} / {ANTHROPIC_DAY:,} tokens today)"
    )
    assert lines[2] == f"local-openai/gpt-4o-mini — {tokens['gpt-4o-mini']:,} tokens today"
    assert lines[3] == f"quick-haiku (bound-anthropic / claude-haiku-4-5) — {tokens['claude-haiku-4-5']:,} / 100,000 tokens today"
    assert lines[4].startswith("cost — $") and lines[4].endswith(" / $5.00 today"), lines[4]
    shown = float(lines[4].split("$")[1].split()[0])
    assert shown == pytest.approx(cost / 1e12, abs=1e-6)


def test_pai_get_agents_shows_todays_cost(server, spent):
    _, cost = spent
    rows = table(server.cli("get", "agents"))
    row = next(r for r in rows if r["NAME"] == "support-bot")
    assert row["MODELS"] == "local-anthropic/claude-sonnet-4-6,local-openai/gpt-4o-mini"
    assert row["MAX COST/DAY"] == "$5.00"
    # Exact: the sum of the agent's call records, each priced when it ended.
    assert row["COST TODAY"] == "$" + usd(cost)
    budget = server.budget("agent-cost", "support-bot")
    assert budget["unit"] == "usd" and budget["limit"] == 5
    assert budget["spent"] == pytest.approx(cost / 1e12, abs=1e-9)
