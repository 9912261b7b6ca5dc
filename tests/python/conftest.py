"""Harness for the end-to-end tests: the real `pai` binary in front of the in-repo mock upstream.

Everything runs on loopback. The mock upstream checks the *real* provider keys, so a call that
reaches it with anything else (a pai access key, say) fails loudly.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
PAI = os.environ.get("PAI_BIN", str(TARGET / "pai"))
MOCK = os.environ.get("PAI_MOCK_BIN", str(TARGET / "pai-mock"))

OPENAI_UPSTREAM_KEY = "sk-upstream-openai-REALKEY-0001"
ANTHROPIC_UPSTREAM_KEY = "sk-ant-upstream-REALKEY-0002"
GEMINI_UPSTREAM_KEY = "AIza-upstream-gemini-REALKEY-0003"
AZURE_UPSTREAM_KEY = "azure-upstream-REALKEY-0004"
ADMIN_TOKEN = "pai_admin_test_token_0123456789"


class Process:
    """A child process whose output is drained into a log file and searchable lines."""

    def __init__(self, argv, log_path: pathlib.Path, env=None):
        self.log_path = log_path
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        self._log = open(log_path, "w", encoding="utf-8")
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"process exited ({self.proc.returncode}); see {self.log_path}")
                continue
            m = regex.search(line)
            if m:
                return m
        raise TimeoutError(f"no line matching {pattern!r} within {timeout}s; see {self.log_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(timeout=5)
        self._log.close()


def headers_of(recorded: dict) -> dict:
    """A recorded request's headers, lower-cased, whatever shape the mock reports them in."""
    h = recorded["headers"]
    items = h.items() if isinstance(h, dict) else h
    return {k.lower(): v for k, v in items}


class Mock:
    def __init__(self, url: str):
        self.url = url

    def requests(self) -> list[dict]:
        with urllib.request.urlopen(self.url + "/_mock/requests", timeout=10) as r:
            return json.load(r)

    def reset(self):
        req = urllib.request.Request(self.url + "/_mock/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).read()


class Gateway:
    def __init__(self, url: str, admin_url: str, env: dict, data_dir: pathlib.Path, log_path: pathlib.Path):
        self.url = url
        self.admin_url = admin_url
        self.env = env
        self.data_dir = data_dir
        self.log_path = log_path
        self.keys: dict[str, str] = {}

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [PAI, *args], input=input, capture_output=True, text=True, env=self.env, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pai {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def apply(self, yaml: str) -> subprocess.CompletedProcess:
        return self.cli("apply", "-f", "-", input=yaml)

    def mint(self, name: str, provider: str, *extra: str) -> str:
        out = self.cli("access-key", "create", "--name", name, "--model-provider", provider, *extra)
        key = out.stdout.strip().splitlines()[-1].strip()
        assert key.startswith("pak_"), out.stdout
        # No waiting: an admin write takes effect before the CLI returns (read your writes).
        self.keys[name] = key
        return key

    def admin_get(self, path: str):
        req = urllib.request.Request(
            self.admin_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


def resources(mock_url: str) -> str:
    return f"""
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: openai-upstream}}
data: {{api-key: {OPENAI_UPSTREAM_KEY}}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: local-openai}}
spec:
  provider: openai
  endpoint: {mock_url}/v1
  apiKeySecretRef: {{name: openai-upstream}}
  allowedModels: [gpt-4o-mini, meta/llama-3.1-8b-instruct]
  deniedModels: [gpt-4o]
  externalAccess: {{enabled: true}}
---
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: anthropic-upstream}}
data: {{api-key: {ANTHROPIC_UPSTREAM_KEY}}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: local-anthropic}}
spec:
  provider: anthropic
  endpoint: {mock_url}
  apiKeySecretRef: {{name: anthropic-upstream}}
  allowedModels: [claude-sonnet-4-6, claude-haiku-4-5]
  externalAccess: {{enabled: true}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: closed-door}}
spec:
  provider: openai
  endpoint: http://127.0.0.1:1/v1
  apiKeySecretRef: {{name: openai-upstream}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: false}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: down-upstream}}
spec:
  provider: openai
  endpoint: http://127.0.0.1:1/v1
  apiKeySecretRef: {{name: openai-upstream}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
"""


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def mock(logs_dir) -> Mock:
    proc = Process(
        [
            MOCK,
            "--listen",
            "127.0.0.1:0",
            "--openai-key",
            OPENAI_UPSTREAM_KEY,
            "--anthropic-key",
            ANTHROPIC_UPSTREAM_KEY,
            "--gemini-key",
            GEMINI_UPSTREAM_KEY,
            "--azure-key",
            AZURE_UPSTREAM_KEY,
        ],
        logs_dir / "mock.log",
    )
    m = proc.wait_for(r"listening on (http://\S+)")
    yield Mock(m.group(1))
    proc.stop()


@pytest.fixture(scope="session")
def gateway(mock, tmp_path_factory, logs_dir) -> Gateway:
    data_dir = tmp_path_factory.mktemp("pai-data")
    env = {
        **os.environ,
        "PAI_ADMIN_TOKEN": ADMIN_TOKEN,
        "PAI_DATA_DIR": str(data_dir),
        "RUST_LOG": "debug",
    }
    log_path = logs_dir / "pai.log"
    proc = Process(
        [PAI, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        log_path,
        env=env,
    )
    gw = proc.wait_for(r"pai gateway listening on (http://\S+)").group(1)
    admin = proc.wait_for(r"pai admin API listening on (http://\S+)").group(1)
    env["PAI_ADMIN_URL"] = admin
    g = Gateway(gw, admin, env, data_dir, log_path)
    g.apply(resources(mock.url))
    g.mint("dev-openai", "local-openai")
    g.mint("dev-anthropic", "local-anthropic")
    g.mint("dev-down", "down-upstream")
    g.mint("dev-closed", "closed-door")
    yield g
    proc.stop()
