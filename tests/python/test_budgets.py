"""A daily token budget on an access key, through the Anthropic SDK, across a restart."""

import anthropic
import pytest

from pai_server import Server, base_resources, seconds_to_midnight_utc, table

CAP = 300


@pytest.fixture()
def server(mock, tmp_path, logs_dir):
    s = Server("budgets", tmp_path / "data", logs_dir)
    s.apply(base_resources(mock.url))
    yield s
    s.close()


def call(client):
    return client.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=40,
        messages=[{"role": "user", "content": "Count to ten [mock:words=20]"}],
    )


def assert_refused(err: anthropic.RateLimitError, key_name: str):
    assert err.status_code == 429
    body = err.response.json()
    assert body["type"] == "error", body
    assert body["error"]["type"] == "rate_limit_error", body
    assert f'AccessKey "{key_name}" limits.maxTokensPerDay' in body["error"]["message"], body
    retry_after = int(err.response.headers["retry-after"])
    assert abs(retry_after - seconds_to_midnight_utc()) <= 5, retry_after
    assert err.response.headers["x-should-retry"] == "false"


def tokens_today(server: Server, key_name: str) -> str:
    rows = table(server.cli("get", "access-keys"))
    return next(r for r in rows if r["NAME"] == key_name)["TOKENS TODAY"]


def test_a_capped_key_is_admitted_until_the_budget_would_be_exceeded_and_stays_refused_after_a_restart(server):
    key = server.mint("capped", "--model-provider", "local-anthropic", "--max-tokens-day", str(CAP))
    client = anthropic.Anthropic(base_url=server.url + "/ext", api_key=key, max_retries=0)

    used = []
    refusal = None
    for _ in range(40):
        try:
            msg = call(client).parse()
        except anthropic.RateLimitError as e:
            # The previous call's reservation may still be held at its worst case for a moment
            # after its client has the answer. Once every finished call is settled (the admin
            # view waits for that), the same request again gives the ledger's real answer, which
            # a restart must keep.
            assert server.budget("access-key", "capped")["spent"] == sum(used)
            try:
                msg = call(client).parse()
            except anthropic.RateLimitError as settled:
                refusal = settled
                break
        used.append(msg.usage.input_tokens + msg.usage.output_tokens)
    assert refusal is not None, f"never refused after {len(used)} calls"
    assert len(used) >= 2, used
    assert sum(used) <= CAP, used  # admitted tokens never exceed the cap
    assert_refused(refusal, "capped")

    # The ledger, the call records and the table agree on what was spent, at once: the admin
    # views answer with every call that has finished.
    budget = server.budget("access-key", "capped")
    assert budget["spent"] == sum(used), budget
    assert budget["limit"] == CAP and budget["unit"] == "tokens"
    assert abs(budget["resetsInSeconds"] - seconds_to_midnight_utc()) <= 5
    before = tokens_today(server, "capped")
    assert before == f"{sum(used):,}", before
    budgets_table = server.cli("get", "budgets")
    assert 'AccessKey "capped" limits.maxTokensPerDay' in budgets_table
    assert f"{sum(used):,}" in budgets_table

    # SIGTERM, start again on the same data directory: the spend is still there.
    assert server.stop() == 0
    server.start()
    client = anthropic.Anthropic(base_url=server.url + "/ext", api_key=key, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as again:
        call(client)
    assert_refused(again.value, "capped")
    assert tokens_today(server, "capped") == before
    assert server.budget("access-key", "capped")["spent"] == sum(used)


def test_an_uncapped_key_next_to_it_is_not_affected(server):
    server.mint("capped", "--model-provider", "local-anthropic", "--max-tokens-day", "1")
    free = server.mint("free", "--model-provider", "local-anthropic")
    capped = anthropic.Anthropic(base_url=server.url + "/ext", api_key=server.keys["capped"], max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as refused:
        call(capped)
    assert_refused(refused.value, "capped")
    msg = call(anthropic.Anthropic(base_url=server.url + "/ext", api_key=free, max_retries=0)).parse()
    assert msg.content[0].text.startswith("mock reply:")
    assert server.budget("access-key", "capped")["spent"] == 0
