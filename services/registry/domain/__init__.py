"""The registry's rules: who may do what, what a valid change is, what it publishes.

No HTTP and no SQL here: routes call these functions, these call the repository.
"""
