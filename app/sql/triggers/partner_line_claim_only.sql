-- partner_line_claim_only: settlement lines are never edited or deleted; a
-- statement may claim an unclaimed one, once (partner_line_guard(), LP002).
CREATE TRIGGER partner_line_claim_only BEFORE UPDATE OR DELETE ON partner_line
    FOR EACH ROW EXECUTE FUNCTION partner_line_guard();
