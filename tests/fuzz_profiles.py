"""Hypothesis profiles for the fuzz tests (tests/test_fuzz_*.py): a short, deterministic run in CI
and a long one on demand.

``TIMBRESPACE_FUZZ=long`` selects the long run (see docs/reliability.md, "Fuzzing"); anything else,
or nothing, the CI one. Each test asks :func:`examples` for its own count: the CI figure it names,
multiplied in the long run, so that cheap targets (the codec) take most of the long run's inputs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = "long" if os.environ.get("TIMBRESPACE_FUZZ") == "long" else "ci"
#: How many times more examples each test runs in the long profile.
LONG_FACTOR = int(os.environ.get("TIMBRESPACE_FUZZ_FACTOR", "1000"))

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
# CI: the same examples on every run and machine (derandomize), no example database written into
# the tree, no deadline (a slow shared machine must not fail a test for being slow).
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET, print_blob=True)
# Long: random (a new part of the space each run); a failure prints its example and the blob to
# replay it (@reproduce_failure), so nothing is written into the tree either.
settings.register_profile("long", max_examples=200 * LONG_FACTOR, deadline=None, derandomize=False, database=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.load_profile(PROFILE)


def examples(ci: int) -> settings:
    """Settings running ``ci`` examples in CI and ``ci * LONG_FACTOR`` in the long profile."""
    return settings(max_examples=ci * LONG_FACTOR if PROFILE == "long" else ci)
