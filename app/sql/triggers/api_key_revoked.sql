-- api_key_revoked: a revocation NOTIFYs every listening process at commit
-- (api_key_notify_revoked()).
CREATE TRIGGER api_key_revoked AFTER UPDATE OF revoked_at ON api_key FOR EACH ROW
    WHEN (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at) EXECUTE FUNCTION api_key_notify_revoked();
