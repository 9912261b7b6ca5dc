"""Runs last (by name): after everything above, no secret may have leaked to disk or logs."""

import pathlib

from conftest import ANTHROPIC_UPSTREAM_KEY, AZURE_UPSTREAM_KEY, GEMINI_UPSTREAM_KEY, OPENAI_UPSTREAM_KEY


def test_no_provider_key_or_access_key_in_the_store_or_the_logs(gateway, logs_dir):
    secrets = [OPENAI_UPSTREAM_KEY, ANTHROPIC_UPSTREAM_KEY, GEMINI_UPSTREAM_KEY, AZURE_UPSTREAM_KEY, *gateway.keys.values()]
    # Strip the pak_ prefix too: a key body alone is as good as the key.
    secrets += [k[len("pak_"):] for k in gateway.keys.values()]
    files = [p for p in pathlib.Path(gateway.data_dir).rglob("*") if p.is_file()]
    files += [gateway.log_path]
    assert any(p.name.startswith("pai.db") for p in files)
    for path in files:
        data = path.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"{s[:12]}… found in {path}"


def test_calls_were_recorded(gateway):
    usage = gateway.admin_get("/admin/v1/usage?since_ms=0")
    rows = usage["items"]
    by_provider = {}
    for row in rows:
        by_provider.setdefault(row["provider"], 0)
        by_provider[row["provider"]] += row["requests"]
    assert by_provider.get("local-openai", 0) >= 5
    assert by_provider.get("local-anthropic", 0) >= 5


def test_get_model_providers_table(gateway):
    out = gateway.cli("get", "model-providers").stdout
    header = out.splitlines()[0].split()
    assert header[:4] == ["NAME", "PROVIDER", "ENDPOINT", "MAX/DAY"]
    assert "LAST" in header and "AGE" in header
    assert "local-openai" in out and "local-anthropic" in out
    assert OPENAI_UPSTREAM_KEY not in out
