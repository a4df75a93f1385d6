"""What a backend's vector unit looks like, as the schedules need it: register width and count.

A matrix product is computed in register tiles: ``rows`` rows of output by
``lanes`` columns, two vector registers wide, all held in registers while
the contraction runs.  The tile fills the register file: rows x 2 accumulator
registers, plus the two registers of the right operand's row and one for the
broadcast left operand.  So AVX2 (16 registers of 8 floats) takes 6 x 16
tiles and AVX-512 (32 registers of 16 floats) 14 x 32.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.dtypes import DType

# Vector registers per tile row: the accumulators of one output row.
VECTORS_PER_ROW = 2


@dataclass(frozen=True)
class VectorTarget:
    name: str
    vector_bytes: int           # one vector register
    registers: int              # vector registers the compiler may allocate
    # Whether a store of a vector's masked lanes costs what a plain store does (AVX-512's mask
    # registers; AVX2's vmaskmovps store is microcoded and slow on AMD's cores).
    cheap_masked_stores: bool = False

    def lanes(self, dtype: DType) -> int:
        """The ``dtype`` values one vector register holds."""
        return max(1, self.vector_bytes // dtype.itemsize)

    def tile(self, dtype: DType) -> tuple[int, int]:
        """The (rows, lanes) of a register tile of ``dtype`` accumulators."""
        rows = (self.registers - VECTORS_PER_ROW - 1) // VECTORS_PER_ROW
        return rows, VECTORS_PER_ROW * self.lanes(dtype)

    def rows_of(self, width: int, dtype: DType) -> int:
        """The most rows of ``width`` lanes whose accumulators fit where a tile's do."""
        rows, _ = self.tile(dtype)
        vectors_per_row = -(-width // self.lanes(dtype))
        return max(1, rows * VECTORS_PER_ROW // vectors_per_row)


AVX2 = VectorTarget("avx2", vector_bytes=32, registers=16)
AVX512 = VectorTarget("avx512", vector_bytes=64, registers=32, cheap_masked_stores=True)
TARGETS = {target.name: target for target in (AVX2, AVX512)}
