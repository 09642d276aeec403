"""Bulk import of the target list: CSV format, staging by COPY, set-wise checks, move-in, jobs."""
