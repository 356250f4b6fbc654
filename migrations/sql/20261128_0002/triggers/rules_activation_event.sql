-- rules_activation_event: each activation is also a `rules.activated` event (event_rules_activated()).
CREATE TRIGGER rules_activation_event AFTER INSERT ON rules_activation
    FOR EACH ROW EXECUTE FUNCTION event_rules_activated();
