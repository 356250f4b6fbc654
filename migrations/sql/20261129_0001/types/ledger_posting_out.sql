-- ledger_posting_out: one posting as ledger_post() renders it in an entry's
-- response (PostingOut in app/ledger/schemas.py: member, account, points, partner).
CREATE TYPE ledger_posting_out AS (member text, account text, points bigint, partner text);
