"""Suite-wide setup: the cost model decides with fixed rates, not with this machine's timing.

sparsify()'s default decision reads this machine's calibration from the cache (measuring it
when absent). The suite points the cache at a temporary folder holding the reference rates
(decision.REFERENCE) under this machine's key, so that every decision a test asserts is the
same on every machine. tests/test_calibration.py measures a real calibration on its own.
"""

from __future__ import annotations

import dataclasses

import pytest
from onnx_sparsify import calibration
from onnx_sparsify.decision import REFERENCE


@pytest.fixture(autouse=True, scope="session")
def reference_calibration(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(calibration.CACHE_ENV, str(folder))
        for threads in (1, 2):
            rates = dataclasses.replace(REFERENCE, machine=calibration.cpu_model(), threads=threads)
            calibration.save(rates, calibration.cache_path(threads))
        yield folder
