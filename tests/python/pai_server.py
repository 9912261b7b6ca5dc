"""A `pai serve` of a test's own: its own data directory, ports and log, restartable.

The session `gateway` fixture of conftest.py is shared by every test; budgets, prices, metrics
and shutdown need a server whose state nobody else touches, and that can be stopped and started
again on the same data directory. This starts one the way conftest.py does (port 0, the
`listening on` lines read from stderr) against the session `mock`.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

from conftest import ADMIN_TOKEN, ANTHROPIC_UPSTREAM_KEY, OPENAI_UPSTREAM_KEY, PAI, Process


def base_resources(mock_url: str, anthropic_max_per_day: int | None = None) -> str:
    """Providers in front of the mock: OpenAI, Anthropic and an unpriced vLLM model."""
    cap = f"\n  maxTokensPerDay: {anthropic_max_per_day}" if anthropic_max_per_day else ""
    return f"""
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: openai-upstream}}
data: {{api-key: {OPENAI_UPSTREAM_KEY}}}
---
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: anthropic-upstream}}
data: {{api-key: {ANTHROPIC_UPSTREAM_KEY}}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: local-openai}}
spec:
  provider: openai
  endpoint: {mock_url}/v1
  apiKeySecretRef: {{name: openai-upstream}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: local-anthropic}}
spec:
  provider: anthropic
  endpoint: {mock_url}
  apiKeySecretRef: {{name: anthropic-upstream}}
  allowedModels: [claude-sonnet-4-6, claude-haiku-4-5]
  externalAccess: {{enabled: true}}{cap}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: local-vllm}}
spec:
  provider: vllm
  endpoint: {mock_url}/v1
  apiKeySecretRef: {{name: openai-upstream}}
  allowedModels: [meta/llama-3.1-8b-instruct]
  externalAccess: {{enabled: true}}
"""


def usd(pico: int) -> str:
    """Pico-USD the way pai prints dollars (x-pai-cost-usd, costUsd): rounded half up to 6 places."""
    micros = (pico + 500_000) // 1_000_000
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def eventually(probe, timeout: float = 5.0, what: str = "the condition"):
    """Call `probe` until it returns something truthy; call records are written just after the
    answer, so what the admin API reports can trail the client by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} did not hold within {timeout} s (last: {result!r})"
        time.sleep(0.05)


def seconds_to_midnight_utc() -> float:
    return 86_400 - time.time() % 86_400


def table(text: str) -> list[dict[str, str]]:
    """A kubectl-style table as rows keyed by header; cells are separated by 2+ spaces."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()))) for line in lines[1:]]


class Server:
    """One `pai serve`; `stop()` sends SIGTERM and reports the exit, `start()` starts it again."""

    def __init__(self, name: str, data_dir: pathlib.Path, logs_dir: pathlib.Path, *extra: str, grace: int = 15):
        self.name = name
        self.data_dir = data_dir
        self.logs_dir = logs_dir
        self.extra = list(extra)
        self.grace = grace
        self.starts = 0
        self.proc: Process | None = None
        self.keys: dict[str, str] = {}
        self.env = {**os.environ, "PAI_ADMIN_TOKEN": ADMIN_TOKEN, "PAI_DATA_DIR": str(data_dir), "RUST_LOG": "info"}
        self.start()

    @property
    def log_paths(self) -> list[pathlib.Path]:
        return [self.logs_dir / f"{self.name}-{i}.log" for i in range(1, self.starts + 1)]

    def start(self):
        self.starts += 1
        argv = [
            PAI, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
            "--data-dir", str(self.data_dir), "--shutdown-grace-seconds", str(self.grace), *self.extra,
        ]
        self.proc = Process(argv, self.logs_dir / f"{self.name}-{self.starts}.log", env=self.env)
        self.url = self.proc.wait_for(r"pai gateway listening on (http://\S+)").group(1)
        self.admin_url = self.proc.wait_for(r"pai admin API listening on (http://\S+)").group(1)
        self.env["PAI_ADMIN_URL"] = self.admin_url

    def sigterm(self):
        assert self.proc is not None
        self.proc.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.proc.wait(timeout=timeout)
        self.proc.stop()
        return code

    def stop(self) -> int:
        self.sigterm()
        return self.wait_exit(self.grace + 10)

    def close(self):
        """Stop, then check that no provider key or access key reached the disk or the logs."""
        if self.proc is not None:
            self.proc.stop()
        secrets = [OPENAI_UPSTREAM_KEY, ANTHROPIC_UPSTREAM_KEY, *self.keys.values()]
        secrets += [k[len("pak_"):] for k in self.keys.values()]
        files = [p for p in self.data_dir.rglob("*") if p.is_file()] + self.log_paths
        for path in files:
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:12]}… found in {path}"

    # --- the CLI and the admin API -------------------------------------------------------------

    def cli(self, *args: str, input: str | None = None) -> str:
        r = subprocess.run([PAI, *args], input=input, capture_output=True, text=True, env=self.env, timeout=60)
        assert r.returncode == 0, f"pai {' '.join(args)} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        return r.stdout

    def apply(self, yaml: str) -> str:
        return self.cli("apply", "-f", "-", input=yaml)

    def mint(self, name: str, *how: str) -> str:
        """`pai access-key create --name NAME <how…>`; waits until the gateway serves the key."""
        key = self.cli("access-key", "create", "--name", name, *how).strip().splitlines()[-1].strip()
        assert key.startswith("pak_"), key
        self.keys[name] = key
        deadline = time.monotonic() + 10
        while True:
            req = urllib.request.Request(self.url + "/ext/v1/models", headers={"Authorization": f"Bearer {key}"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 200:
                        return key
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def admin_get(self, path: str):
        req = urllib.request.Request(self.admin_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def usage_rows(self, key_name: str, requests: int, path: str = "/admin/v1/usage") -> list[dict]:
        """The usage rows of an access key, which already count its `requests` finished calls:
        the admin views answer with every call that has finished."""
        rows = [r for r in self.admin_get(path)["items"] if r["access_key"] == key_name]
        assert sum(r["requests"] for r in rows) >= requests, rows
        return rows

    def budget(self, scope: str, name: str) -> dict:
        items = self.admin_get("/admin/v1/budgets")["items"]
        found = [b for b in items if b["scope"] == scope and b["name"] == name]
        assert len(found) == 1, items
        return found[0]

    def metrics_text(self) -> str:
        """GET /metrics on the admin listener, with no token at all."""
        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=10) as r:
            assert r.status == 200
            return r.read().decode()
