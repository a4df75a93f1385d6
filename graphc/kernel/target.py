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

    def tile(self, dtype: DType) -> tuple[int, int]:
        """The (rows, lanes) of a register tile of ``dtype`` accumulators."""
        lanes = VECTORS_PER_ROW * max(1, self.vector_bytes // dtype.itemsize)
        rows = (self.registers - VECTORS_PER_ROW - 1) // VECTORS_PER_ROW
        return rows, lanes


AVX2 = VectorTarget("avx2", vector_bytes=32, registers=16)
AVX512 = VectorTarget("avx512", vector_bytes=64, registers=32)
TARGETS = {target.name: target for target in (AVX2, AVX512)}
