"""Fault tests: each fault struck during a write load, then every total and every write proved."""

import pytest

# The proofs live in the support module: show what differs when one of them fails.
pytest.register_assert_rewrite("tests.faults.support")
