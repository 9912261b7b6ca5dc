-- Resources by kind and name. `json` is the resource as applied, except that a Secret's `data`
-- is emptied: its values live only in `sealed` (nonce || AES-256-GCM ciphertext || tag, with
-- "Secret/<name>" as associated data).
CREATE TABLE resources (
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    json       TEXT    NOT NULL,
    sealed     BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
);

-- The hashes each AccessKey answers to: its current key (expires_at NULL) and, during rotation
-- grace, its previous key (expires_at in unix seconds). Kept in step with `resources` in the
-- same transaction; one hash belongs to one key.
CREATE TABLE access_key_hashes (
    hash       TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    expires_at INTEGER
);
CREATE INDEX access_key_hashes_by_name ON access_key_hashes (name);

-- One row per call through the gateway. Usage columns are all NULL when usage is unknown;
-- cost is a decimal string because pico-USD is a u128.
CREATE TABLE calls (
    call_id            TEXT    NOT NULL,
    started_at_ms      INTEGER NOT NULL,
    workload           TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    access_key         TEXT,
    model              TEXT    NOT NULL,
    operation          TEXT    NOT NULL,
    stream             INTEGER NOT NULL,
    status             INTEGER NOT NULL,
    usage_input        INTEGER,
    usage_cached_input INTEGER,
    usage_cache_write  INTEGER,
    usage_output       INTEGER,
    usage_reasoning    INTEGER,
    cost_pico_usd      TEXT,
    duration_ms        INTEGER NOT NULL,
    client_ip          TEXT,
    error              TEXT
);
CREATE INDEX calls_by_started_at ON calls (started_at_ms);
