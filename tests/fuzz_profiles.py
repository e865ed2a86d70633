"""Hypothesis profiles for the fuzz tests (tests/test_fuzz_*.py): a short, deterministic run in CI
and a long one on demand.

``TIMBRESPACE_FUZZ=long`` selects the long run (see docs/reliability.md, "Fuzzing"); anything else,
or nothing, the CI one. Each test asks :func:`examples` for its own counts, CI and long, so that
cheap targets (the codec) take most of the long run's inputs. Tests :func:`count` the inputs they
try, by target; the long run prints the table at exit, and any run writes it as JSON to
``TIMBRESPACE_FUZZ_REPORT`` when that is set.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections import Counter

from hypothesis import HealthCheck, settings

PROFILE = "long" if os.environ.get("TIMBRESPACE_FUZZ") == "long" else "ci"
#: Scales every test's long-run count (1: the documented run).
LONG_SCALE = float(os.environ.get("TIMBRESPACE_FUZZ_SCALE", "1"))
#: Inputs tried, by target (a decoded packet, a framed stream, a message handled...).
COUNTS: Counter[str] = Counter()

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
# CI: the same examples on every run and machine (derandomize), no example database written into
# the tree, no deadline (a slow shared machine must not fail a test for being slow).
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET, print_blob=True)
# Long: random (a new part of the space each run); a failure prints its example and the blob to
# replay it (@reproduce_failure), so nothing is written into the tree either.
settings.register_profile("long", max_examples=100_000, deadline=None, derandomize=False, database=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.load_profile(PROFILE)


def examples(ci: int, long: int) -> settings:
    """Settings running ``ci`` examples in CI and ``long`` (times LONG_SCALE) in the long profile."""
    return settings(max_examples=max(1, round(long * LONG_SCALE)) if PROFILE == "long" else ci)


def count(target: str, n: int = 1) -> None:
    """Record ``n`` more inputs tried on ``target``."""
    COUNTS[target] += n


def _report() -> None:
    path = os.environ.get("TIMBRESPACE_FUZZ_REPORT")
    if not COUNTS or (PROFILE != "long" and not path):
        return
    width = max(map(len, COUNTS))
    lines = [f"{t:<{width}}  {n:>10,}" for t, n in sorted(COUNTS.items())]
    print("\nfuzz inputs by target:\n" + "\n".join(lines) + f"\n{'total':<{width}}  {sum(COUNTS.values()):>10,}",
          file=sys.stderr)
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(COUNTS), f, indent=1)


atexit.register(_report)
