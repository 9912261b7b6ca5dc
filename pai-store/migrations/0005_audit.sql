-- The audit chain (pai_core::audit): every call and admin change, each entry linked to the one
-- before by its SHA-256 and MAC'd under a key derived from the master secret. `pos` is only
-- the order rows are stored in; `seq` is the entry's own, covered by its MAC.
CREATE TABLE audit (
    pos   INTEGER PRIMARY KEY,
    seq   INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    prev  TEXT    NOT NULL,
    body  TEXT    NOT NULL,
    mac   TEXT    NOT NULL
);
CREATE INDEX audit_by_time ON audit (at_ms);

-- The chain's head (its last entry), written with every append, and the seal of the prefix
-- retention removed. One row, MAC'd like the entries.
CREATE TABLE audit_ends (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    head_seq     INTEGER NOT NULL,
    head_hash    TEXT    NOT NULL,
    head_mac     TEXT    NOT NULL,
    seal_through INTEGER,
    seal_hash    TEXT,
    seal_mac     TEXT
);
