"""Every table, imported in one place for Alembic and the schema test."""

from app.approvals.models import AwardApproval
from app.auth.models import ApiKey, ApiKeyLookup
from app.budgets.models import RulesBudget, RulesBudgetMember, RulesBudgetSlice
from app.db import Base
from app.eventlog.models import EventLogRow
from app.events.models import MemberEvent
from app.holds.models import PointHold
from app.ledger.models import (
    Account,
    ChainHead,
    EntryChain,
    ExpiryNotice,
    IdempotencyRecord,
    JobWatermark,
    JournalEntry,
    LimitUsage,
    LotUse,
    MemberBalance,
    PendingCredit,
    PointLot,
    Posting,
)
from app.members.models import Member, MemberStatusChange
from app.orders.models import OrderRefund, PaidOrder
from app.partners.models import (
    Conversion,
    Partner,
    PartnerBalance,
    PartnerLine,
    PartnerPayment,
    PartnerRate,
    PartnerRedemption,
    PartnerStatement,
)
from app.privacy.models import MemberErasure
from app.programs.models import Program, ProgramSecret
from app.reports.models import ReportDayFigure, ReportRollup
from app.rulesets.models import RulesActivation, RulesVersion
from app.segments.models import MemberSegment, SegmentSnapshot
from app.service_keys import ServiceSecret
from app.tiers.models import MemberTier, TierChange
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookFanout

__all__ = [
    "Account",
    "ApiKey",
    "ApiKeyLookup",
    "AwardApproval",
    "Base",
    "ChainHead",
    "Conversion",
    "EntryChain",
    "EventLogRow",
    "ExpiryNotice",
    "IdempotencyRecord",
    "JobWatermark",
    "JournalEntry",
    "LimitUsage",
    "LotUse",
    "Member",
    "MemberBalance",
    "MemberErasure",
    "MemberEvent",
    "MemberSegment",
    "MemberStatusChange",
    "MemberTier",
    "OrderRefund",
    "PaidOrder",
    "Partner",
    "PartnerBalance",
    "PartnerLine",
    "PartnerPayment",
    "PartnerRate",
    "PartnerRedemption",
    "PartnerStatement",
    "PendingCredit",
    "PointHold",
    "PointLot",
    "Posting",
    "Program",
    "ProgramSecret",
    "ReportDayFigure",
    "ReportRollup",
    "RulesActivation",
    "RulesBudget",
    "RulesBudgetMember",
    "RulesBudgetSlice",
    "RulesVersion",
    "SegmentSnapshot",
    "ServiceSecret",
    "TierChange",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookFanout",
]
