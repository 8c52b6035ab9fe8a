"""Suite-wide setup: the cost model decides with fixed rates, not with this machine's timing,
and property-based tests draw the same cases every run.

sparsify()'s default decision reads this machine's calibration from the cache (measuring it
when absent). The suite points the cache at a temporary folder holding the reference rates
(decision.REFERENCE) under this machine's key, so that every decision a test asserts is the
same on every machine. tests/test_calibration.py measures a real calibration on its own.

Hypothesis derandomizes its draws (a fixed seed per test) under both profiles: "ci" (the CI
environment variable set) draws more examples than "dev". A test's own settings may change the
number of examples, never the seed (test_fuzz.py's ONNX_SPARSIFY_FUZZ_SEED picks another fixed one).
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, settings
from onnx_sparsify import calibration
from onnx_sparsify.decision import REFERENCE

_SLOW = [HealthCheck.too_slow]
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True, suppress_health_check=_SLOW)
settings.register_profile("dev", max_examples=150, deadline=None, derandomize=True, suppress_health_check=_SLOW)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True, scope="session")
def reference_calibration(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(calibration.CACHE_ENV, str(folder))
        for threads in (1, 2):
            rates = dataclasses.replace(REFERENCE, machine=calibration.cpu_model(), threads=threads)
            calibration.save(rates, calibration.cache_path(threads))
        yield folder
