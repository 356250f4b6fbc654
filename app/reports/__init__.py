"""The operator's reports: liability, breakage, redemption cost, activity, overview."""
