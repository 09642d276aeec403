"""The logbook: visits, plans and every intervention given, append-only."""
