"""Four-eyes approvals: an award above the rules' `limits.award_approval_above`
waits for a second admin key's approval instead of posting."""
