-- partner_line_guard(): keeps partner settlement lines append-only but for the one
-- write a statement's close makes: claiming an unclaimed line (`statement_id` NULL
-- -> the statement's id), once. Any other UPDATE, and every DELETE, raises SQLSTATE
-- LP002, so no line can be repriced, moved or claimed by a second statement.
-- Attached BEFORE UPDATE OR DELETE per row to partner_line (trigger
-- partner_line_claim_only).
CREATE OR REPLACE FUNCTION partner_line_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.statement_id IS NULL AND NEW.statement_id IS NOT NULL
       AND (to_jsonb(NEW) - 'statement_id') = (to_jsonb(OLD) - 'statement_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'partner_line is append-only: % refused', TG_OP
        USING ERRCODE = 'LP002', HINT = 'only a statement''s claim of an unclaimed line is allowed';
END
$$;
