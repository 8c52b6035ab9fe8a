"""The CPU kernel's variants under test, (instruction set, strategy) pairs: every test that takes
an `isa` parameter runs once per variant, forced through ONNX_SPARSIFY_CPU_ISA and
ONNX_SPARSIFY_CPU_STRATEGY (the plugin reads them when a session creates its kernels) and the
pybind11 module's `isa` and `strategy` arguments. A variant this machine lacks is skipped with that
reason; CI also runs the no-AVX-512 variants under valgrind, whose CPU has no AVX-512.

The matrix holds the float kernels' distinct code: avx512vnni runs avx512f's float code (VNNI
serves int8; test_jit.py checks that it selects the same plan), and the baseline has no code
generator (test_jit.py checks that forcing one is refused)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from onnx_sparsify import _core

ALL_ISAS = ("avx512vnni", "avx512f", "avx2", "baseline")
STRATEGIES = ("generated", "loops")
SUPPORTED = tuple(_core.supported_cpu_isas())
ENV = _core.CPU_ISA_ENVIRONMENT_VARIABLE
STRATEGY_ENV = _core.CPU_STRATEGY_ENVIRONMENT_VARIABLE


@dataclass(frozen=True)
class Variant:
    isa: str
    strategy: str

    def __str__(self) -> str:
        return f"{self.isa}-{self.strategy}"


def supported(variant: Variant) -> bool:
    return variant.isa in SUPPORTED and variant.strategy in _core.supported_cpu_strategies(variant.isa)


VARIANTS = tuple(
    Variant(isa, strategy)
    for isa in ("avx512f", "avx2", "baseline")
    for strategy in STRATEGIES
    if (isa, strategy) != ("baseline", "generated")
)

PARAMS = [
    pytest.param(v, id=str(v), marks=pytest.mark.skipif(not supported(v), reason=f"this machine does not run {v}"))
    for v in VARIANTS
]


def core_args(variant: Variant | None) -> dict[str, str]:
    """The pybind11 module's arguments forcing `variant` (none: the plugin's own choice)."""
    return {} if variant is None else {"isa": variant.isa, "strategy": variant.strategy}


@contextmanager
def forced_isa(variant: Variant | None) -> Iterator[None]:
    """Sessions created inside run `variant` (None: the plugin's own choice)."""
    if variant is None:
        yield
        return
    previous = {name: os.environ.get(name) for name in (ENV, STRATEGY_ENV)}
    os.environ[ENV], os.environ[STRATEGY_ENV] = variant.isa, variant.strategy
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
