-- The budget ledger (see `SqliteLedger`), written behind the in-memory counters by one writer
-- in batched transactions.

-- Spent (settled or expired, charged) per scope per UTC day (days since the Unix epoch). The
-- writer stores the absolute value the memory held, so rewriting a row is idempotent. `spent`
-- is a decimal string: the counters are u128 (pico-USD), which SQLite cannot hold exactly.
CREATE TABLE ledger_spent (
    scope_kind TEXT    NOT NULL,
    scope_name TEXT    NOT NULL,
    day        INTEGER NOT NULL,
    spent      TEXT    NOT NULL,
    PRIMARY KEY (scope_kind, scope_name, day)
);

-- Reservations open at the last batch. A row still here when the ledger opens belongs to a
-- process that stopped without settling it: it is charged in full, then deleted. `scopes` is a
-- JSON array of {"kind", "name", "amount"} (amount a decimal string), in the order reserved.
CREATE TABLE ledger_reservations (
    id            INTEGER NOT NULL PRIMARY KEY,
    day           INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    scopes        TEXT    NOT NULL
);
