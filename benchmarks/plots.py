"""PNG plots of the sweeps: SparseConv and dense Conv times, and their ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_sweep(name: str, label: str, rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(10, 3.8))
    for threads in sorted({r["threads"] for r in rows}):
        sub = [r for r in rows if r["threads"] == threads]
        xs = [str(r["x"]) for r in sub]
        ax_t.plot(xs, [r["dense_ms"] for r in sub], "o--", label=f"ORT dense Conv, {threads} thr")
        ax_t.plot(xs, [r["sparse_ms"] for r in sub], "o-", label=f"SparseConv, {threads} thr")
        ax_r.plot(xs, [r["ratio"] for r in sub], "o-", label=f"{threads} thread(s)")
    ax_t.set_yscale("log")
    ax_t.set_xlabel(label)
    ax_t.set_ylabel("median time (ms)")
    ax_t.legend(fontsize=7)
    ax_r.axhline(1.0, color="gray", lw=0.8)
    ax_r.set_xlabel(label)
    ax_r.set_ylabel("dense / sparse")
    ax_r.legend(fontsize=7)
    fig.suptitle(f"sweep: {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
