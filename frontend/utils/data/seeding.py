"""numpy random streams seeded from graphc generators.

Shuffling and data augmentation draw many small random numbers on the host,
where a numpy Generator is fast.  Seeding those numpy streams from graphc's
Philox generators keeps ``graphc.manual_seed`` the one call that makes a run
reproducible, data order and augmentations included.
"""
from __future__ import annotations

import numpy as np

from ...random import Generator, default_generator

_UINT64 = (1 << 64) - 1    # SeedSequence takes non-negative entropy; a seed may be negative


def as_generator(generator) -> Generator:
    """A graphc Generator from ``generator``: a Generator, an int seed (a new Generator), or None (the default)."""
    if generator is None:
        return default_generator
    if isinstance(generator, Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return Generator(int(generator))
    raise TypeError(f"generator must be a graphc.Generator, an int seed or None, not {type(generator).__name__}")


def numpy_rng(generator: Generator) -> np.random.Generator:
    """A new numpy Generator seeded from ``generator``'s state.

    Taking the seed advances ``generator`` by one Philox block, so successive
    calls (one per epoch, say) give different streams and re-seeding the graphc
    generator repeats them all.
    """
    seed, offset = (int(v) for v in generator.get_state().numpy())
    generator.set_state([seed, offset + 1])
    return np.random.default_rng([seed & _UINT64, offset & _UINT64])


class _DefaultGeneratorStream:
    """One numpy stream that follows graphc's default generator.

    Per-sample augmentations draw from it, so seeding a numpy Generator per draw
    (tens of microseconds) is avoided.  It is re-seeded whenever the default
    generator is not in the state this stream left it in: after
    ``graphc.manual_seed`` or after other draws, so a seeded program repeats its
    augmentations exactly.
    """

    def __init__(self):
        self._rng: np.random.Generator | None = None
        self._state_after_seeding: list[int] | None = None

    def __call__(self) -> np.random.Generator:
        if self._rng is None or default_generator.get_state().tolist() != self._state_after_seeding:
            self._rng = numpy_rng(default_generator)
            self._state_after_seeding = default_generator.get_state().tolist()
        return self._rng


default_numpy_rng = _DefaultGeneratorStream()
