-- The PostgreSQL store and ledger, shared by every replica. Everything lives in the schema the
-- connection's search_path names first (`public` unless told otherwise).

-- Resources by kind and name. `json` is the resource as applied, except that a Secret's `data`
-- is emptied: its values live only in `sealed` (nonce || AES-256-GCM ciphertext || tag, with
-- "Secret/<name>" as associated data).
CREATE TABLE resources (
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    json       TEXT   NOT NULL,
    sealed     BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);

-- The hashes each AccessKey answers to: its current key (expires_at NULL) and, during rotation
-- grace, its previous key (expires_at in unix seconds). Kept in step with `resources` in the
-- same transaction; one hash belongs to one key.
CREATE TABLE access_key_hashes (
    hash       TEXT   NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    expires_at BIGINT
);
CREATE INDEX access_key_hashes_by_name ON access_key_hashes (name);

-- The store's revision: one row, bumped in the transaction of every write that changed a
-- resource, and announced with NOTIFY pai_changes on commit, so every replica reloads.
CREATE TABLE revision (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    revision BIGINT  NOT NULL
);
INSERT INTO revision (revision) VALUES (0);

-- One row per call through the gateway, `seq` in the order recorded. Usage columns are all
-- NULL when usage is unknown; cost is a decimal string because pico-USD is a u128.
CREATE TABLE calls (
    seq                BIGSERIAL PRIMARY KEY,
    call_id            TEXT    NOT NULL,
    started_at_ms      BIGINT  NOT NULL,
    workload           TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    access_key         TEXT,
    model              TEXT    NOT NULL,
    binding            TEXT,
    operation          TEXT    NOT NULL,
    stream             BOOLEAN NOT NULL,
    status             INTEGER NOT NULL,
    usage_input        BIGINT,
    usage_cached_input BIGINT,
    usage_cache_write  BIGINT,
    usage_output       BIGINT,
    usage_reasoning    BIGINT,
    cost_pico_usd      TEXT,
    duration_ms        BIGINT  NOT NULL,
    client_ip          TEXT,
    error              TEXT
);
CREATE INDEX calls_by_started_at ON calls (started_at_ms);
-- A call is recorded once: a batch whose commit was answered by a dropped connection is
-- written again from the outage backlog, and its rows that did land are skipped.
CREATE UNIQUE INDEX calls_by_call_id ON calls (call_id) WHERE call_id <> '';
