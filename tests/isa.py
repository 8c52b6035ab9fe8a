"""The CPU kernel's instruction-set variants under test: every test that takes an `isa`
parameter runs once per variant, forced through ONNX_SPARSIFY_CPU_ISA (the plugin reads it when
a session creates its kernels) and the pybind11 module's `isa` argument. A variant this CPU lacks
is skipped with that reason; CI also runs a subset under valgrind, whose CPU has no AVX-512."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from onnx_sparsify import _core

ALL_ISAS = ("avx512f-jit", "avx512f", "avx2", "baseline")
SUPPORTED = tuple(_core.supported_cpu_isas())
ENV = _core.CPU_ISA_ENVIRONMENT_VARIABLE

PARAMS = [
    pytest.param(isa, id=isa, marks=pytest.mark.skipif(isa not in SUPPORTED, reason=f"this CPU does not run {isa}"))
    for isa in ALL_ISAS
]


@contextmanager
def forced_isa(isa: str | None) -> Iterator[None]:
    """Sessions created inside run the `isa` variant (None: the plugin's own choice)."""
    if isa is None:
        yield
        return
    previous = os.environ.get(ENV)
    os.environ[ENV] = isa
    try:
        yield
    finally:
        if previous is None:
            del os.environ[ENV]
        else:
            os.environ[ENV] = previous
