-- ledger_balance_out: a member's balances right after an entry, as ledger_post()
-- renders them in its response (MemberBalances in app/ledger/schemas.py).
CREATE TYPE ledger_balance_out AS (member text, available bigint, pending bigint, held bigint);
