"""Claude Code itself, unchanged, through pai to an Anthropic upstream."""

import json
import os
import subprocess

import pytest

from conftest import ANTHROPIC_UPSTREAM_KEY, ROOT, headers_of

CLAUDE = ROOT / "tests" / "node" / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"

# Keep every byte on loopback: no telemetry, updates or error reports; and fail fast.
QUIET = {
    "CLAUDE_CODE_MAX_RETRIES": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
}


def wrapped(raw_key: str) -> str:
    """The Anthropic-looking form of a pai key, as `pai gateway env` hands it out."""
    return "sk-ant-api03-pak-" + raw_key[len("pak_"):] + "-AA"


def claude_env(home, gateway, raw_key: str, model: str, small_model: str) -> dict:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url + "/ext",
        "ANTHROPIC_API_KEY": wrapped(raw_key),
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": small_model,
        "ANTHROPIC_SMALL_FAST_MODEL": small_model,
        **QUIET,
    }


def ask(args: list[str], env: dict, cwd, words: int) -> dict:
    """Run Claude Code headless and check it answered with the mock's reply of `words` words."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr + result.stdout
    out = json.loads(result.stdout)
    assert out["is_error"] is False, out
    assert out["result"].startswith("mock reply:"), out
    assert len(out["result"].split()) == words, out
    # Claude Code asks for extended thinking, and the mock then thinks before it answers: the
    # output tokens count the answer and the thinking.
    assert out["usage"]["output_tokens"] >= words, out
    return out


@pytest.mark.skipif(not CLAUDE.exists() and not os.environ.get("CI"), reason="Claude Code not installed (scripts/test installs it)")
def test_claude_code_gets_its_answer_through_pai(gateway, mock, tmp_path):
    env = claude_env(tmp_path, gateway, gateway.keys["dev-anthropic"], "claude-sonnet-4-6", "claude-haiku-4-5")
    before = len(mock.requests())
    ask([str(CLAUDE), "-p", "Say hi [mock:words=6]", "--output-format", "json"], env, tmp_path, 6)
    # It reached the upstream through pai, with the real key and its ?beta=true query.
    calls = [r for r in mock.requests()[before:] if r["path"] == "/v1/messages"]
    assert calls
    for r in calls:
        headers = headers_of(r)
        assert headers["x-api-key"] == ANTHROPIC_UPSTREAM_KEY
        assert r["query"] == "beta=true"
        assert "pak" not in json.dumps(r["headers"])


@pytest.mark.skipif(not CLAUDE.exists() and not os.environ.get("CI"), reason="Claude Code not installed (scripts/test installs it)")
def test_three_command_onboarding_with_claude_code(gateway, tmp_path):
    """`pai login`, `eval $(pai gateway env)`, `claude` — literally, from a shell."""
    from conftest import PAI

    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.pathsep.join([os.path.dirname(PAI), str(CLAUDE.parent), os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(home),
        "URL": gateway.url,
        "KEY": gateway.keys["dev-anthropic"],
        "ANTHROPIC_MODEL": "claude-sonnet-4-6",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5",
        **QUIET,
    }
    script = (
        'pai login "$URL" --access-key "$KEY" >/dev/null && '
        'eval "$(pai gateway env)" && '
        'claude -p "Say hi [mock:words=5]" --output-format json'
    )
    ask(["bash", "-c", script], env, home, 5)


# An OpenAI-compatible server (vLLM, say) may serve a model under a Claude-like name. Claude Code
# treats the two kinds of name differently: for a name it does not recognise it also sends its
# environment notes as a mid-conversation message with role "system" inside `messages`, which
# pai must translate (into an OpenAI system message) rather than refuse.
@pytest.mark.skipif(not CLAUDE.exists() and not os.environ.get("CI"), reason="Claude Code not installed (scripts/test installs it)")
@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"])
def test_claude_code_through_pai_to_an_openai_compatible_upstream(gateway, mock, tmp_path, model):
    """Claude Code speaks Anthropic; the upstream speaks OpenAI: pai translates both ways."""
    from conftest import OPENAI_UPSTREAM_KEY

    gateway.apply(
        f"""
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: cc-openai}}
spec:
  provider: openai
  endpoint: {mock.url}/v1
  apiKeySecretRef: {{name: openai-upstream}}
  allowedModels: [gpt-4o-mini, claude-sonnet-4-6]
  externalAccess: {{enabled: true}}
"""
    )
    raw_key = gateway.keys.get("cc-openai-dev") or gateway.mint("cc-openai-dev", "cc-openai")
    env = claude_env(tmp_path, gateway, raw_key, model, model)
    before = len(mock.requests())
    ask([str(CLAUDE), "-p", "Say hi [mock:words=7]", "--output-format", "json"], env, tmp_path, 7)
    # It reached the OpenAI upstream, translated, with the real key.
    calls = [r for r in mock.requests()[before:] if r["path"] == "/v1/chat/completions"]
    assert calls
    assert not [r for r in mock.requests()[before:] if r["path"].startswith("/v1/messages")]
    for r in calls:
        assert headers_of(r)["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"
        assert r["json"]["model"] == model
        assert "pak" not in json.dumps(r["headers"])
