"""The benchmarked cases: the target layer table, the original sparse-kernel project's five
sweeps, and a 1D audio convolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Layer:
    name: str
    x_shape: tuple[int, ...]
    out_channels: int
    kernel: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    sparsity: float = 0.9
    block: int = 1  # input channels zeroed together (benchmarks.single_layer.random_weight)

    @property
    def group(self) -> int:
        return int(self.attrs.get("group", 1))

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.x_shape[1] // self.group, *self.kernel)

    def with_(self, **changes) -> Layer:
        data = {**self.__dict__, **changes}
        return Layer(**data)


def _pads(k: int, rank: int = 2) -> dict[str, list[int]]:
    return {"pads": [k // 2] * (2 * rank)}


# The goals (issue 9): 90% unstructured zeros, 1 thread, target = ORT dense Conv median /
# SparseConv median to reach. A1 is a 1D audio convolution.
A1 = Layer("A1", (1, 64, 16000), 64, (9,), {"pads": [4, 4]})
TARGETS = [
    (Layer("S1", (1, 3, 256, 512), 64, (11, 11), _pads(11)), 4.5),
    (Layer("S2", (1, 32, 256, 512), 64, (11, 11), _pads(11)), 5.0),
    (Layer("R1", (1, 64, 56, 56), 64, (3, 3), _pads(3)), 5.0),
    (Layer("R2", (1, 256, 56, 56), 64, (1, 1)), 4.0),
    (Layer("R3", (1, 128, 28, 28), 128, (3, 3), {"strides": [2, 2], **_pads(3)}), 3.0),
    (Layer("R4", (1, 512, 7, 7), 512, (3, 3), _pads(3)), 4.0),
    (Layer("R5", (1, 1024, 14, 14), 256, (1, 1)), 6.0),
    (Layer("D1", (1, 144, 56, 56), 144, (3, 3), {"group": 144, **_pads(3)}), 2.5),
    (Layer("G1", (1, 128, 56, 56), 128, (3, 3), {"group": 32, **_pads(3)}), 5.0),
    (A1, 6.0),
]
AUDIO = [A1]

# The same layers at 70% zeros, 1 thread.
SPARSITY_70 = 0.7
TARGETS_70 = [
    (layer.with_(sparsity=SPARSITY_70), 1.5) for layer, _ in TARGETS if layer.name in ("R1", "R2", "R4", "R5")
]

# 2 threads against 1 thread, SparseConv at 90% zeros: sparse_ms(1 thread) / sparse_ms(2 threads).
SCALING_TARGETS = {"S1": 1.8, "S2": 1.8, "R1": 1.8}


def sweeps(quick: bool) -> dict[str, tuple[str, list[tuple[Any, Layer]]]]:
    """The five sweeps: name -> (x-axis label, [(x value, layer)])."""
    k_values = [1, 3, 5, 7, 11] if quick else list(range(1, 12))
    c_values = [1, 3, 8, 32] if quick else [1, 2, 3, 4, 8, 16, 32, 64]
    m_values = [1, 8, 64] if quick else [1, 4, 8, 16, 32, 64, 128]
    nz_values = [0.01, 0.05, 0.1, 0.3, 1.0] if quick else [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
    hw_values = [(64, 128), (256, 512)] if quick else [(32, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]
    return {
        "kernel_size": ("kernel size", [(k, Layer(f"k{k}", (1, 3, 256, 512), 64, (k, k), _pads(k))) for k in k_values]),
        "in_channels": (
            "input channels",
            [(c, Layer(f"c{c}", (1, c, 256, 512), 3, (11, 11), _pads(11))) for c in c_values],
        ),
        "out_channels": (
            "output channels",
            [(m, Layer(f"m{m}", (1, 3, 256, 512), m, (11, 11), _pads(11))) for m in m_values],
        ),
        "nonzeros": (
            "ratio of nonzeros",
            [(nz, Layer(f"nz{nz}", (1, 32, 256, 512), 64, (11, 11), _pads(11), sparsity=1.0 - nz)) for nz in nz_values],
        ),
        "input_size": (
            "input size (H x W)",
            [(f"{h}x{w}", Layer(f"hw{h}x{w}", (1, 3, h, w), 64, (11, 11), _pads(11))) for h, w in hw_values],
        ),
    }
