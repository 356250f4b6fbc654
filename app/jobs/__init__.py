"""Jobs that span domains, run on a schedule, "as of" an instant."""

from enum import StrEnum


class JobName(StrEnum):
    """The jobs, in the order the worker runs them (app/jobs/service.py's JOBS); the
    CLI offers them without importing every domain."""

    lift_statuses = "lift-statuses"
    activate_pending = "activate-pending"
    release_holds = "release-holds"
    expire = "expire"
    evaluate_tiers = "evaluate-tiers"
    notify_expiring = "notify-expiring"
    fail_conversions = "fail-conversions"
    close_statements = "close-statements"
    check_cost_cap = "check-cost-cap"
    snapshot_segments = "snapshot-segments"
    rollup_reports = "rollup-reports"


NAMES = tuple(job.value for job in JobName)
