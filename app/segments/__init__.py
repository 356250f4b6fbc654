"""RFM segments: the report, its members, and the snapshots the rules read."""
