"""The event log: everything a caller may react to, in one dense sequence per program."""
