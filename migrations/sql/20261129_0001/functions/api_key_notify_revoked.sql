-- api_key_notify_revoked(): NOTIFYs channel `api_key_revoked` with the row's id
-- when a key is revoked (trigger api_key_revoked) or a partner is suspended or
-- reactivated (trigger partner_status_changed). Every process caches verified keys
-- only while it LISTENs there (app/auth/service.py) and drops the whole cache on
-- each notice, so a revocation or a suspension, however it is made, reaches all of
-- them when it commits.
CREATE OR REPLACE FUNCTION api_key_notify_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_key_revoked', NEW.id::text);
    RETURN NULL;
END
$$;
