"""Dense Conv weights to SparseConv's CSR form and back.

Row m is output channel m; the column is the C-order position (c, k1..kk) inside the
C/group x kernel_shape block, i.e. the dense weight reshaped to [M, C/group * prod(kernel_shape)].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CsrWeight:
    values: np.ndarray  # float32 [nnz]
    col_indices: np.ndarray  # int32 or int64 [nnz]
    row_ptr: np.ndarray  # same dtype [M + 1]
    kernel_shape: tuple[int, ...]
    in_channels_per_group: int

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    @property
    def out_channels(self) -> int:
        return int(self.row_ptr.size - 1)


def dense_to_csr(weight: np.ndarray, index_dtype: type = np.int32) -> CsrWeight:
    """Converts a dense Conv weight [M, C/group, k1..kk] into CSR, dropping exact zeros."""
    weight = np.asarray(weight, dtype=np.float32)
    if weight.ndim < 3:
        raise ValueError(f"a Conv weight has rank 3 to 5, got shape {weight.shape}")
    index_dtype = np.dtype(index_dtype)
    if index_dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise ValueError(f"index_dtype must be int32 or int64, got {index_dtype}")
    rows = weight.reshape(weight.shape[0], -1)
    if rows.shape[1] > np.iinfo(index_dtype).max or np.count_nonzero(rows) > np.iinfo(index_dtype).max:
        raise ValueError(f"weight of shape {weight.shape} is too large for {index_dtype} indices")
    row_idx, col_idx = np.nonzero(rows)
    row_ptr = np.zeros(rows.shape[0] + 1, dtype=index_dtype)
    np.cumsum(np.bincount(row_idx, minlength=rows.shape[0]), out=row_ptr[1:])
    return CsrWeight(
        values=rows[row_idx, col_idx].astype(np.float32),
        col_indices=col_idx.astype(index_dtype),
        row_ptr=row_ptr,
        kernel_shape=tuple(int(k) for k in weight.shape[2:]),
        in_channels_per_group=int(weight.shape[1]),
    )


def csr_to_dense(csr: CsrWeight) -> np.ndarray:
    """The dense weight [M, C/group, k1..kk] a CSR weight stands for."""
    rows = np.zeros((csr.out_channels, csr.in_channels_per_group * int(np.prod(csr.kernel_shape))), np.float32)
    row_of = np.repeat(np.arange(csr.out_channels), np.diff(csr.row_ptr.astype(np.int64)))
    rows[row_of, csr.col_indices] = csr.values
    return rows.reshape(csr.out_channels, csr.in_channels_per_group, *csr.kernel_shape)
