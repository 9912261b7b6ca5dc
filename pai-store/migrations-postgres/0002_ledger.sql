-- The budget ledger shared by replicas (see `PostgresLedger`). Amounts are NUMERIC(39,0): the
-- counters are u128 (pico-USD). Each reserve, settle and read is one function call, so one
-- transaction and one round trip; the counters a reserve touches are locked in key order.

-- Spent (settled or expired, charged) and reserved (held in flight) per scope per UTC day (days
-- since the Unix epoch, by the gateway's clock).
CREATE TABLE ledger_counters (
    scope_kind TEXT           NOT NULL,
    scope_name TEXT           NOT NULL,
    day        BIGINT         NOT NULL,
    spent      NUMERIC(39, 0) NOT NULL DEFAULT 0,
    reserved   NUMERIC(39, 0) NOT NULL DEFAULT 0,
    PRIMARY KEY (scope_kind, scope_name, day)
);

-- Open reservations: the scopes and amounts, in the order reserved. One whose deadline has
-- passed belongs to a replica that never settled it (it crashed): the next call of any replica
-- charges it in full.
CREATE TABLE ledger_reservations (
    id            BIGSERIAL PRIMARY KEY,
    day           BIGINT           NOT NULL,
    expires_at_ms BIGINT           NOT NULL,
    kinds         TEXT[]           NOT NULL,
    names         TEXT[]           NOT NULL,
    amounts       NUMERIC(39, 0)[] NOT NULL
);
CREATE INDEX ledger_reservations_by_deadline ON ledger_reservations (expires_at_ms);

-- Close one reservation: release what it holds and charge `p_actual[i]` (or, where missing,
-- the amount reserved) on its day. The counters are locked in key order first, as reserves lock
-- them, so a settle and a reserve on the same scopes never deadlock. One already closed changes
-- nothing.
CREATE FUNCTION pai_ledger_close(p_id BIGINT, p_actual NUMERIC[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    DELETE FROM ledger_reservations WHERE id = p_id
    RETURNING day, kinds, names, amounts INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM ledger_counters c
    WHERE c.day = r.day
      AND (c.scope_kind, c.scope_name) IN (SELECT t.k, t.nm FROM unnest(r.kinds, r.names) AS t(k, nm))
    ORDER BY c.scope_kind, c.scope_name
    FOR UPDATE;
    UPDATE ledger_counters c
    SET reserved = c.reserved - ch.amount, spent = c.spent + ch.charge
    FROM (
        SELECT t.k, t.nm, SUM(t.a) AS amount, SUM(coalesce(p_actual[t.ord::INTEGER], t.a)) AS charge
        FROM unnest(r.kinds, r.names, r.amounts) WITH ORDINALITY AS t(k, nm, a, ord)
        GROUP BY t.k, t.nm
    ) ch
    WHERE c.scope_kind = ch.k AND c.scope_name = ch.nm AND c.day = r.day;
END;
$$;

-- Charge in full every reservation past its deadline (at most 1,000 a call, so no call does
-- unbounded work), skipping rows another transaction is expiring or settling. The index makes
-- this one probe when nothing is due, which is almost always.
CREATE FUNCTION pai_ledger_expire(p_now_ms BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    due RECORD;
BEGIN
    FOR due IN
        SELECT r.id FROM ledger_reservations r
        WHERE r.expires_at_ms <= p_now_ms
        ORDER BY r.id LIMIT 1000
        FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM pai_ledger_close(due.id, ARRAY[]::NUMERIC[]);
    END LOOP;
END;
$$;

-- Reserve on every scope or on none. Answers the new reservation's id, or (out_id NULL) the
-- 1-based index of the first scope that would go over with its spent and reserved (counting
-- what earlier entries of the same call hold on it).
CREATE FUNCTION pai_ledger_reserve(
    p_kinds TEXT[], p_names TEXT[], p_limits NUMERIC[], p_amounts NUMERIC[],
    p_day BIGINT, p_expires_at_ms BIGINT, p_now_ms BIGINT
) RETURNS TABLE (out_id BIGINT, out_refused INTEGER, out_spent TEXT, out_reserved TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER := coalesce(array_length(p_kinds, 1), 0);
    v_spent NUMERIC;
    v_reserved NUMERIC;
    v_earlier NUMERIC;
    v_id BIGINT;
BEGIN
    PERFORM pai_ledger_expire(p_now_ms);
    INSERT INTO ledger_counters (scope_kind, scope_name, day)
    SELECT DISTINCT t.k, t.nm, p_day FROM unnest(p_kinds, p_names) AS t(k, nm)
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM ledger_counters c
    WHERE c.day = p_day
      AND (c.scope_kind, c.scope_name) IN (SELECT t.k, t.nm FROM unnest(p_kinds, p_names) AS t(k, nm))
    ORDER BY c.scope_kind, c.scope_name
    FOR UPDATE;
    FOR i IN 1..n LOOP
        SELECT c.spent, c.reserved INTO v_spent, v_reserved FROM ledger_counters c
        WHERE c.scope_kind = p_kinds[i] AND c.scope_name = p_names[i] AND c.day = p_day;
        v_earlier := 0;
        FOR j IN 1..(i - 1) LOOP
            IF p_kinds[j] = p_kinds[i] AND p_names[j] = p_names[i] THEN
                v_earlier := v_earlier + p_amounts[j];
            END IF;
        END LOOP;
        IF v_spent + v_reserved + v_earlier + p_amounts[i] > p_limits[i] THEN
            RETURN QUERY SELECT NULL::BIGINT, i, v_spent::TEXT, (v_reserved + v_earlier)::TEXT;
            RETURN;
        END IF;
    END LOOP;
    FOR i IN 1..n LOOP
        UPDATE ledger_counters c SET reserved = c.reserved + p_amounts[i]
        WHERE c.scope_kind = p_kinds[i] AND c.scope_name = p_names[i] AND c.day = p_day;
    END LOOP;
    INSERT INTO ledger_reservations (day, expires_at_ms, kinds, names, amounts)
    VALUES (p_day, p_expires_at_ms, p_kinds, p_names, p_amounts)
    RETURNING id INTO v_id;
    RETURN QUERY SELECT v_id, 0, NULL::TEXT, NULL::TEXT;
END;
$$;

-- Settle: close a reservation with what was used, after charging what expired.
CREATE FUNCTION pai_ledger_settle(p_id BIGINT, p_actual NUMERIC[], p_now_ms BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pai_ledger_expire(p_now_ms);
    PERFORM pai_ledger_close(p_id, p_actual);
END;
$$;

-- Spent on a scope on a day, after charging what expired.
CREATE FUNCTION pai_ledger_spent(p_kind TEXT, p_name TEXT, p_day BIGINT, p_now_ms BIGINT)
RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    v_spent NUMERIC;
BEGIN
    PERFORM pai_ledger_expire(p_now_ms);
    SELECT c.spent INTO v_spent FROM ledger_counters c
    WHERE c.scope_kind = p_kind AND c.scope_name = p_name AND c.day = p_day;
    RETURN coalesce(v_spent, 0)::TEXT;
END;
$$;
