"""Resources from the CLI: model bindings and agents."""

import json


def test_model_bindings_from_flags(gateway):
    out = gateway.cli(
        "add", "model", "llama-fast", "--provider", "local-openai", "--model", "meta/llama-3.1-8b-instruct",
        "--api-key", "openai-upstream:api-key", "--max-tokens-day", "100000", "--max-tokens-request", "4000",
    )
    assert "llama-fast" in out.stdout
    listed = gateway.cli("get", "models", "-o", "json").stdout
    items = json.loads(listed)
    items = items["items"] if isinstance(items, dict) else items
    binding = next(i for i in items if i["metadata"]["name"] == "llama-fast")
    assert binding["spec"]["apiKeySecretRef"] == {"name": "openai-upstream", "key": "api-key"}
    assert binding["spec"]["maxTokensPerDay"] == 100000
    assert "llama-fast" in gateway.cli("get", "models").stdout
    gateway.cli("delete", "model", "llama-fast")
    assert "llama-fast" not in gateway.cli("get", "models").stdout


def test_agents_apply_with_models_and_bindings(gateway):
    gateway.apply(
        """
apiVersion: pai.io/v1
kind: Agent
metadata: {name: support-bot}
spec:
  models: [local-anthropic/claude-sonnet-4-6, local-openai/gpt-4o-mini]
  modelBindings: []
  rateLimits: {maxCostPerDayUSD: 5}
"""
    )
    assert "support-bot" in gateway.cli("get", "agents").stdout
    bad = gateway.cli("apply", "-f", "-", input="apiVersion: pai.io/v1\nkind: Agent\nmetadata: {name: x}\nspec: {modles: [a/b]}\n", check=False)
    assert bad.returncode != 0
    assert "did you mean models" in bad.stderr + bad.stdout


def test_a_key_can_only_narrow_its_provider(gateway):
    bad = gateway.cli(
        "access-key", "create", "--name", "too-wide", "--model-provider", "local-openai",
        "--allowed-model", "gpt-4o-mini", "--allowed-model", "gpt-5", check=False,
    )
    assert bad.returncode != 0
    assert "gpt-5" in bad.stderr and "only narrow" in bad.stderr
    denied = gateway.cli(
        "access-key", "create", "--name", "denied-model", "--model-provider", "local-openai",
        "--allowed-model", "gpt-4o", check=False,
    )
    assert denied.returncode != 0, "gpt-4o is in the provider's deniedModels"
    assert "too-wide" not in gateway.cli("get", "access-keys").stdout
