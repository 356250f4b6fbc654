-- partner_status_changed: suspending or reactivating a partner NOTIFYs every
-- listening process at commit (api_key_notify_revoked()), so cached partner keys
-- are looked up again and a suspended partner's keys are refused at once.
CREATE TRIGGER partner_status_changed AFTER UPDATE OF status ON partner FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status) EXECUTE FUNCTION api_key_notify_revoked();
