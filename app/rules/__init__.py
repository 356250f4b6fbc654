"""The rules module: pure functions over a rules document and facts.

No database, no web framework, no clock (an import-linter contract in pyproject
keeps it that way): callers pass "now" and every fact in.
"""

from app.rules.document import RulesDocument, default_document
from app.rules.earning import (
    ExplanationLine,
    OrderEarning,
    OrderFacts,
    OrderLine,
    RulesError,
    Segment,
    earn_order,
)
from app.rules.events import EventEarning, EventFacts, earn_event
from app.rules.refunds import RefundLine, RefundOutcome, RefundState, refund_amount, refund_lines

__all__ = [
    "EventEarning",
    "EventFacts",
    "ExplanationLine",
    "OrderEarning",
    "OrderFacts",
    "OrderLine",
    "RefundLine",
    "RefundOutcome",
    "RefundState",
    "RulesDocument",
    "RulesError",
    "Segment",
    "default_document",
    "earn_event",
    "earn_order",
    "refund_amount",
    "refund_lines",
]
