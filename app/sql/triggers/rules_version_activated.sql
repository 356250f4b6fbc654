-- rules_version_activated: a change of a program's active rules version NOTIFYs
-- every listening process at commit (rules_version_notify()).
CREATE TRIGGER rules_version_activated AFTER UPDATE OF active ON rules_version FOR EACH ROW
    WHEN (NEW.active IS DISTINCT FROM OLD.active) EXECUTE FUNCTION rules_version_notify();
