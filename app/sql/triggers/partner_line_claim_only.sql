-- partner_line_claim_only: a settlement line is never edited but for the one write
-- a statement's close makes: claiming an unclaimed line (statement_id NULL -> the
-- statement's id), once; any other UPDATE raises LP002 (ledger_refuse_change()), so
-- no line can be repriced, moved or claimed by a second statement. The WHEN clause
-- decides, in the executor, without a function call per claimed line (a close
-- claims up to millions): it must name every column of partner_line.
CREATE TRIGGER partner_line_claim_only BEFORE UPDATE ON partner_line
    FOR EACH ROW
    WHEN (OLD.statement_id IS NOT NULL OR NEW.statement_id IS NULL
          OR (NEW.program_id, NEW.entry_id, NEW.partner_id, NEW.section, NEW.points, NEW.rate_id,
              NEW.price_per_point, NEW.price, NEW.undoes_entry_id, NEW.recorded_at)
             IS DISTINCT FROM (OLD.program_id, OLD.entry_id, OLD.partner_id, OLD.section, OLD.points,
                               OLD.rate_id, OLD.price_per_point, OLD.price, OLD.undoes_entry_id,
                               OLD.recorded_at))
    EXECUTE FUNCTION ledger_refuse_change();
