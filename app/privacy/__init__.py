"""A member's personal data: the export of everything held about them, and its erasure (GDPR)."""
