-- ledger_rfc3339(value): an instant as the API writes it, RFC 3339 in UTC with
-- microseconds ('2026-11-24T16:18:25.683237Z'), so responses rendered in SQL
-- (ledger_post()) read exactly like the ones pydantic renders. NULL stays NULL.
CREATE OR REPLACE FUNCTION ledger_rfc3339(value timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
