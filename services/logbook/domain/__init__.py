"""The logbook's rules: who may write for which household, what a valid entry is.

No HTTP and no SQL here: routes call these functions, these call the repository.
"""
