-- tier_change_event: each tier change is also a `tier.changed` event (event_tier_changed()).
CREATE TRIGGER tier_change_event AFTER INSERT ON tier_change
    FOR EACH ROW EXECUTE FUNCTION event_tier_changed();
