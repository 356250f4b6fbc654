-- partner_balance_spread(): shares a partner's funding headroom out over its
-- balance slots (table partner_balance, one row per slot), so that concurrent
-- entries, each on one slot, can check the partner's funding without queueing on
-- one row.
--
-- A partner's floor is how low its funding may go: 0 (prepaid),
-- -(credit_limit_points + paid_points) (postpaid with a limit: the points it gave out
-- on credit and has not paid for yet stay within its limit), or none (postpaid
-- without one: every slot's floor is NULL and nothing is checked). Its headroom H is the funding of all slots minus
-- the floor. This function locks every slot of the partner (ascending slot order,
-- the order every writer that needs more than one slot uses) and sets each slot's
-- `floor` so that the slot's own headroom (funding - floor) is H / slots (the first
-- H mod slots slots one more). The slots' floors then add up to the partner's, and
-- while every slot stays at or above its own floor the partner stays at or above
-- its floor. When H is below zero (a credit limit was lowered under what is already
-- given out) every slot's floor is the largest bigint: no debit passes a slot on
-- its own, each one goes to ledger_post()'s exact check over all slots.
--
-- p_program_id and p_partner_id name the partner (every key of partner_balance
-- leads with the program).
-- Called by ledger_post() when a debit does not fit its slot, and when a partner is
-- created, its credit limit changes or a statement's payment is recorded (app/partners).
CREATE OR REPLACE FUNCTION partner_balance_spread(p_program_id bigint, p_partner_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_floor bigint;
    v_headroom bigint;
    v_slots integer;
BEGIN
    SELECT CASE WHEN pa.billing = 'prepaid' THEN 0 ELSE -(pa.credit_limit_points + pa.paid_points) END
      INTO v_floor
      FROM partner pa WHERE pa.program_id = p_program_id AND pa.id = p_partner_id;
    PERFORM 1 FROM partner_balance b WHERE b.program_id = p_program_id AND b.partner_id = p_partner_id
      ORDER BY b.slot FOR UPDATE;
    SELECT sum(b.funding) - v_floor, count(*) INTO v_headroom, v_slots
      FROM partner_balance b WHERE b.program_id = p_program_id AND b.partner_id = p_partner_id;
    UPDATE partner_balance b
       SET floor = CASE
               WHEN v_floor IS NULL THEN NULL
               WHEN v_headroom < 0 THEN 9223372036854775807
               ELSE b.funding - (v_headroom / v_slots + CASE WHEN b.slot < v_headroom % v_slots THEN 1 ELSE 0 END)
           END
     WHERE b.program_id = p_program_id AND b.partner_id = p_partner_id;
END
$$;
