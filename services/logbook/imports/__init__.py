"""Bulk import of logbook history from CSV."""
