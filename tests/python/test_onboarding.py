"""Onboarding as a user does it: `pai login`, `eval "$(pai gateway env)"`, the official SDKs
configured by the environment alone; and the ways a key is refused, each in the client's dialect."""

from __future__ import annotations

import json
import os
import pathlib
import stat
import subprocess
import sys
import urllib.error
import urllib.request

from conftest import PAI

VENV_BIN = pathlib.Path(sys.executable).parent

ANTHROPIC_CALL = (
    "import anthropic; "
    "r = anthropic.Anthropic().messages.create(model='claude-sonnet-4-6', max_tokens=32, "
    "messages=[{'role': 'user', 'content': 'hi from onboarding'}]); "
    "print('anthropic:', r.content[0].text)"
)
OPENAI_CALL = (
    "import openai; "
    "r = openai.OpenAI().chat.completions.create(model='gpt-4o-mini', "
    "messages=[{'role': 'user', 'content': 'hi from onboarding'}]); "
    "print('openai:', r.choices[0].message.content)"
)


def user_env(tmp_path: pathlib.Path, **extra: str) -> dict:
    """A fresh user: own HOME and config dir, no SDK or pai variables inherited."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    path = os.pathsep.join([str(pathlib.Path(PAI).parent), str(VENV_BIN), os.environ.get("PATH", "/usr/bin:/bin")])
    return {"PATH": path, "HOME": str(home), "PAI_CONFIG_DIR": str(home / ".config" / "pai"), **extra}


def run(args: list[str], env: dict, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, f"{args} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def post(url: str, body: dict, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"content-type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def chat(gateway, key: str, model: str = "gpt-4o-mini", headers: dict | None = None) -> tuple[int, dict]:
    return post(
        gateway.url + "/ext/v1/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": "hi"}]},
        {"authorization": f"Bearer {key}", **(headers or {})},
    )


def messages(gateway, key: str, model: str = "claude-sonnet-4-6") -> tuple[int, dict]:
    return post(
        gateway.url + "/ext/v1/messages",
        {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
        {"x-api-key": key},
    )


def assert_openai_error(status: int, body: dict, expected_status: int, kind: str):
    assert status == expected_status, body
    assert set(body) == {"error"}, body
    assert {"message", "type", "param", "code"} <= set(body["error"]), body
    assert body["error"]["type"] == kind, body
    assert body["error"]["message"]


def assert_anthropic_error(status: int, body: dict, expected_status: int, kind: str):
    assert status == expected_status, body
    assert body["type"] == "error", body
    assert body["error"]["type"] == kind, body
    assert body["error"]["message"]


def test_login_env_and_both_sdks_from_a_shell(gateway, tmp_path):
    env = user_env(tmp_path, URL=gateway.url + "/", KEY=gateway.keys["dev-anthropic"])
    script = (
        'pai login "$URL" --access-key "$KEY" && eval "$(pai gateway env)" '
        f'&& python -c "{ANTHROPIC_CALL}"'
    )
    r = run(["bash", "-c", script], env)
    lines = r.stdout.splitlines()
    assert lines[0] == f"logged in to {gateway.url} as dev-anthropic (ModelProvider local-anthropic)", r.stdout
    assert lines[1].startswith("anthropic: mock reply:"), r.stdout

    creds_path = pathlib.Path(env["PAI_CONFIG_DIR"]) / "credentials.json"
    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(creds_path.parent.stat().st_mode) == 0o700
    assert json.loads(creds_path.read_text()) == {"url": gateway.url, "accessKey": gateway.keys["dev-anthropic"]}

    # The same three steps with an OpenAI-side key, given in its wrapped form.
    raw = gateway.keys["dev-openai"]
    wrapped = "sk-ant-api03-pak-" + raw[len("pak_"):] + "-AA"
    (tmp_path / "openai").mkdir()
    env = user_env(tmp_path / "openai", URL=gateway.url, KEY=wrapped)
    script = (
        'pai login "$URL" --access-key "$KEY" && eval "$(pai gateway env)" '
        f'&& python -c "{OPENAI_CALL}"'
    )
    r = run(["bash", "-c", script], env)
    lines = r.stdout.splitlines()
    assert lines[0] == f"logged in to {gateway.url} as dev-openai (ModelProvider local-openai)", r.stdout
    assert lines[1].startswith("openai: mock reply:"), r.stdout
    creds_path = pathlib.Path(env["PAI_CONFIG_DIR"]) / "credentials.json"
    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
    assert json.loads(creds_path.read_text())["accessKey"] == raw

    # What `eval` saw: exactly the four exports.
    out = run([PAI, "gateway", "env"], env).stdout
    assert out == (
        f"export ANTHROPIC_BASE_URL={gateway.url}/ext\n"
        f"export ANTHROPIC_API_KEY={wrapped}\n"
        f"export OPENAI_BASE_URL={gateway.url}/ext/v1\n"
        f"export OPENAI_API_KEY={raw}\n"
    )


def test_login_refuses_a_bad_key_or_an_unreachable_gateway(gateway, tmp_path):
    env = user_env(tmp_path)
    r = run([PAI, "login", gateway.url, "--access-key", "pak_doesnotexist0000"], env, check=False)
    assert r.returncode != 0
    assert "refused the access key (401)" in r.stderr, r.stderr
    assert not (pathlib.Path(env["PAI_CONFIG_DIR"]) / "credentials.json").exists()

    r = run([PAI, "login", "http://127.0.0.1:1", "--access-key", gateway.keys["dev-openai"]], env, check=False)
    assert r.returncode != 0
    assert "cannot reach the pai gateway at http://127.0.0.1:1" in r.stderr, r.stderr

    r = run([PAI, "gateway", "env"], env, check=False)
    assert r.returncode != 0
    assert "pai login" in r.stderr, r.stderr
    assert r.stdout == ""


def test_setup_lists_the_models_of_the_key(gateway, tmp_path):
    env = user_env(tmp_path)
    run([PAI, "login", gateway.url, "--access-key", gateway.keys["dev-openai"]], env)
    out = run([PAI, "gateway", "setup"], env).stdout
    lines = out.splitlines()
    assert lines[:4] == run([PAI, "gateway", "env"], env).stdout.splitlines()
    assert all(line.startswith("#") for line in lines[4:]), out
    assert "#   gpt-4o-mini" in lines, out
    assert "#   meta/llama-3.1-8b-instruct" in lines, out
    assert "# daily token limit: none" in lines, out

    # A capped key, given by flags instead of saved credentials; eval still works.
    key = gateway.mint("onboard-capped", "local-openai", "--allowed-model", "gpt-4o-mini", "--max-tokens-day", "5000")
    out = run([PAI, "gateway", "setup", "--url", gateway.url, "--access-key", key], env).stdout
    assert "#   gpt-4o-mini" in out.splitlines(), out
    assert "meta/llama" not in out, out
    assert "# daily token limit: 5000" in out.splitlines(), out
    assert "# tokens left today: " in out, out
    r = run(["bash", "-c", 'eval "$(pai gateway setup --url "$U" --access-key "$K")" && echo "$OPENAI_API_KEY"'],
            {**env, "U": gateway.url, "K": key})
    assert r.stdout.strip() == key


def test_a_rotated_out_key_is_refused_and_the_new_one_works(gateway):
    old = gateway.mint("onboard-rotate", "local-openai")
    assert chat(gateway, old)[0] == 200
    new = gateway.cli("access-key", "rotate", "onboard-rotate", "--grace-seconds", "0").stdout.strip().splitlines()[-1]
    assert new.startswith("pak_") and new != old
    # At once: the rotation took effect before the CLI returned.
    assert_openai_error(*chat(gateway, old), 401, "authentication_error")
    assert_anthropic_error(*messages(gateway, old), 401, "authentication_error")
    status, body = chat(gateway, new)
    assert status == 200, body
    assert body["choices"][0]["message"]["content"].startswith("mock reply:")


def test_a_revoked_key_is_refused(gateway):
    key = gateway.mint("onboard-revoke", "local-anthropic")
    assert messages(gateway, key)[0] == 200
    gateway.cli("delete", "access-key", "onboard-revoke")
    # At once: the deletion took effect before the CLI returned.
    assert_anthropic_error(*messages(gateway, key), 401, "authentication_error")
    assert_openai_error(*chat(gateway, key), 401, "authentication_error")


def test_every_key_change_takes_effect_before_the_cli_returns(gateway):
    """Read your writes, 20 rounds through the real CLI and gateway: a minted key works at once,
    a key rotated without grace is refused at once and its successor works, a deleted key is
    refused at once. Nothing here waits or retries."""
    for i in range(20):
        name = f"ryw-{i}"
        key = gateway.mint(name, "local-openai")
        status, body = chat(gateway, key)
        assert status == 200, (i, body)
        new = gateway.cli("access-key", "rotate", name, "--grace-seconds", "0").stdout.strip().splitlines()[-1]
        assert_openai_error(*chat(gateway, key), 401, "authentication_error")
        status, body = chat(gateway, new)
        assert status == 200, (i, body)
        gateway.cli("delete", "access-key", name)
        assert_openai_error(*chat(gateway, new), 401, "authentication_error")


def test_a_model_outside_the_keys_allowed_models_is_refused(gateway):
    key = gateway.mint("onboard-one-model", "local-openai", "--allowed-model", "gpt-4o-mini")
    assert chat(gateway, key, "gpt-4o-mini")[0] == 200
    status, body = chat(gateway, key, "meta/llama-3.1-8b-instruct")
    assert_openai_error(status, body, 403, "permission_error")
    assert "meta/llama-3.1-8b-instruct" in body["error"]["message"], body


def test_a_key_outside_its_allowed_cidrs_is_refused_even_with_a_forged_forwarded_for(gateway):
    key = gateway.mint("onboard-cidr", "local-openai", "--allowed-cidr", "10.0.0.0/8")
    status, body = chat(gateway, key)
    assert_openai_error(status, body, 403, "permission_error")
    assert "allowedCIDRs" in body["error"]["message"], body
    # The loopback peer is not a trusted proxy: its X-Forwarded-For is not believed.
    status, body = chat(gateway, key, headers={"x-forwarded-for": "10.1.2.3"})
    assert_openai_error(status, body, 403, "permission_error")
    assert "allowedCIDRs" in body["error"]["message"], body
    assert_anthropic_error(*messages(gateway, key, "gpt-4o-mini"), 403, "permission_error")
