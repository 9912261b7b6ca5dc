"""The audit chain through the real binary: calls and admin changes become entries, the CLI
reads and verifies them, and tampering with the SQLite file is named by `pai audit verify`."""

import json
import sqlite3
import subprocess

import openai
import pytest

from conftest import OPENAI_UPSTREAM_KEY, PAI
from pai_server import Server, base_resources, table


@pytest.fixture(scope="module")
def server(mock, tmp_path_factory, logs_dir):
    s = Server("audit", tmp_path_factory.mktemp("audit-data"), logs_dir)
    s.apply(base_resources(mock.url))
    s.mint("audit-key", "--model-provider", "local-openai")
    yield s
    s.close()


def audit(server, *args, check=True):
    r = subprocess.run([PAI, "audit", *args], capture_output=True, text=True, env=server.env, timeout=60)
    if check:
        assert r.returncode == 0, f"pai audit {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def entries(server, *args):
    return [json.loads(line) for line in audit(server, *args).stdout.splitlines()]


def test_calls_and_changes_are_entries_that_verify(server):
    client = openai.OpenAI(base_url=server.url + "/ext/v1", api_key=server.keys["audit-key"], max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    server.cli("delete", "model-provider", "local-vllm")

    exported = entries(server, "export", "--since", "1h")
    kinds = [e["type"] for e in exported]
    assert kinds.count("call") >= 3 and "admin" in kinds, kinds
    assert [e["seq"] for e in exported] == list(range(exported[0]["seq"], exported[0]["seq"] + len(exported)))
    call = next(e["event"] for e in exported if e["type"] == "call")
    assert call["workload"] == "ext:audit-key"
    assert call["access_key"] == "audit-key" and call["provider"] == "local-openai"
    assert call["status"] == 200 and call["usage"]["input"] > 0
    assert call["client_ip"] == "127.0.0.1"
    changes = [e["event"] for e in exported if e["type"] == "admin"]
    # The Secrets, providers and key applied, then the deletion; who, from where, digests only.
    secret = next(c for c in changes if c.get("kind") == "Secret")
    assert secret["actor"] == "admin-token" and secret["clientIp"] == "127.0.0.1"
    assert secret["outcome"] == "created" and len(secret["after"]) == 64 and "before" not in secret
    deleted = changes[-1]
    assert (deleted["action"], deleted["kind"], deleted["name"]) == ("delete", "ModelProvider", "local-vllm")
    assert len(deleted["before"]) == 64
    assert OPENAI_UPSTREAM_KEY not in json.dumps(exported)

    # The key's row says how much it used today and when it was last used.
    row = next(r for r in table(server.cli("get", "access-keys")) if r["NAME"] == "audit-key")
    assert int(row["TOKENS TODAY"].replace(",", "")) > 0 and row["LAST USED"].endswith(" ago"), row

    tail = audit(server, "tail", "-n", "2").stdout
    assert "delete ModelProvider/local-vllm deleted" in tail, tail
    verified = audit(server, "verify").stdout
    assert "audit chain verified" in verified, verified
    head = verified.split("head: ")[1].strip()
    assert audit(server, "verify", "--expect", head).returncode == 0
    # Nothing in the future: an empty export.
    assert entries(server, "export", "--since", "2999-01-01") == []


def test_tampering_with_the_file_is_named(server):
    client = openai.OpenAI(base_url=server.url + "/ext/v1", api_key=server.keys["audit-key"], max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    head = audit(server, "verify").stdout.split("head: ")[1].strip()
    victim = int(head.split(":")[0])
    # Someone with the file but not the master key makes a call look like it failed.
    with sqlite3.connect(server.data_dir / "pai.db") as db:
        changed = db.execute(
            "UPDATE audit SET body = replace(body, '\"status\":200', '\"status\":500') WHERE seq = ?", (victim,)
        ).rowcount
    assert changed == 1
    # The call's row really changed (it is the last entry: that call).
    with sqlite3.connect(server.data_dir / "pai.db") as db:
        (body,) = db.execute("SELECT body FROM audit WHERE seq = ?", (victim,)).fetchone()
    assert '"status":500' in body
    broken = audit(server, "verify", check=False)
    assert broken.returncode == 1
    assert f"entry {victim}" in broken.stderr and "changed" in broken.stderr, broken.stderr
    # The previous head no longer matches either.
    assert audit(server, "verify", "--expect", head, check=False).returncode == 1
