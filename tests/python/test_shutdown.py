"""SIGTERM while 50 streams are live: each one finishes or ends with a clear error, the process
exits 0 within its grace period, and every call is metered."""

import threading
import time

import openai
import pytest

from pai_server import Server, base_resources, eventually

STREAMS = 50
WORDS = 40
GRACE = 15


@pytest.fixture()
def server(mock, tmp_path, logs_dir):
    s = Server("shutdown", tmp_path / "data", logs_dir, grace=GRACE)
    s.apply(base_resources(mock.url))
    s.mint("drain-key", "--model-provider", "local-openai")
    yield s
    s.close()


class Stream(threading.Thread):
    """One streamed chat completion; `outcome` is `complete` or the error that ended it."""

    def __init__(self, client: openai.OpenAI, started: threading.Semaphore):
        super().__init__(daemon=True)
        self.client = client
        self.started = started
        self.outcome = None
        self.text = ""

    def run(self):
        finish = None
        try:
            stream = self.client.chat.completions.create(
                model="gpt-4o-mini",
                stream=True,
                messages=[{"role": "user", "content": f"Take your time [mock:words={WORDS},delay_ms=50]"}],
            )
            first = True
            for chunk in stream:
                if first:
                    self.started.release()
                    first = False
                for choice in chunk.choices:
                    self.text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
            # The SDK stops at `data: [DONE]`; a stream cut short would end without a finish.
            self.outcome = "complete" if finish == "stop" else f"ended without finishing ({finish!r})"
        except Exception as e:  # noqa: BLE001 - any error is fine as long as it says something
            self.outcome = f"{type(e).__name__}: {e}"


def test_sigterm_lets_live_streams_finish_and_meters_every_one(server):
    client = openai.OpenAI(
        base_url=server.url + "/ext/v1", api_key=server.keys["drain-key"], max_retries=0, timeout=60
    )
    since_ms = int(time.time() * 1000) - 1000
    started = threading.Semaphore(0)
    streams = [Stream(client, started) for _ in range(STREAMS)]
    for s in streams:
        s.start()
    for _ in range(STREAMS):
        assert started.acquire(timeout=30), "not every stream got its first event"

    live = sum(s.outcome is None for s in streams)
    assert live == STREAMS, f"only {live} streams were still live at SIGTERM"
    server.sigterm()
    sent = time.monotonic()
    assert server.wait_exit(timeout=GRACE + 5) == 0
    took = time.monotonic() - sent
    assert took < GRACE, f"exit took {took:.1f}s"
    # Each stream takes ~2 s: exiting at once would have meant cutting them.
    assert took > 1.0, f"exit took only {took:.1f}s"
    print(f"SIGTERM to exit: {took:.2f}s with {live} live streams")
    for s in streams:
        s.join(timeout=30)

    outcomes = [s.outcome for s in streams]
    assert all(o is not None for o in outcomes), outcomes
    errors = [o for o in outcomes if o != "complete"]
    for o in errors:
        # A clear error: a named exception with a message.
        assert ":" in o and len(o) > 10, o
    # The grace period is far longer than a stream: none should have been cut.
    assert not errors, errors
    for s in streams:
        assert len(s.text.split()) == WORDS, s.text

    # Started again on the same data directory: all 50 calls were recorded, with their tokens.
    server.start()
    rows = server.usage_rows("drain-key", STREAMS, path=f"/admin/v1/usage?since_ms={since_ms}")
    assert sum(r["requests"] for r in rows) == STREAMS
    assert sum(r["usage"]["output"] for r in rows) == STREAMS * WORDS
    eventually(lambda: "pai stopped" in server.log_paths[0].read_text())
