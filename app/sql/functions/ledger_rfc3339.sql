-- ledger_rfc3339(value): an instant as the API writes it, RFC 3339 in UTC with
-- microseconds ('2026-11-24T16:18:25.683237Z'), so responses rendered in SQL
-- (ledger_post()) read exactly like the ones pydantic renders. NULL stays NULL.
-- STABLE, as to_char() is: PostgreSQL then inlines the body into the calling
-- query. Declared IMMUTABLE it could not (a body less immutable than its
-- declaration is never inlined), and every custom plan of ledger_post()'s
-- response folded each call by running the SQL function: parsing and planning
-- its text again (docs/performance.md: PostgreSQL's CPU per award 0.83x).
CREATE OR REPLACE FUNCTION ledger_rfc3339(value timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
