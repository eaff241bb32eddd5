"""Time mapping: which source pair and timestep each output frame shows. Pure arithmetic, exact.

Output frame n is shown at time n / out_fps; in source frames that is p = n * src_fps / out_fps.
Frame n interpolates between source frames i = floor(p) and i + 1 at t = p - i; when t == 0 it is
source frame i itself, and slots after the last source frame repeat it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Slot:
    """Output frame n shows source frame ``index`` (t == 0) or interpolates index -> index + 1 at t."""

    index: int
    t: Fraction


@dataclass(frozen=True)
class Timing:
    """Exact rational timing between a source clip and the output."""

    source_frames: int
    source_fps: Fraction
    output_fps: Fraction

    @classmethod
    def for_factor(cls, source_frames: int, source_fps: Fraction, factor: int) -> Timing:
        return cls(source_frames, source_fps, source_fps * factor)

    @property
    def ratio(self) -> Fraction:
        """Source frames advanced per output frame."""
        return self.source_fps / self.output_fps

    @property
    def output_frames(self) -> int:
        """Output frames covering the source's duration: ceil(N * out_fps / src_fps)."""
        span = self.source_frames / self.ratio
        return -(-span.numerator // span.denominator)

    def slot(self, n: int) -> Slot:
        p = n * self.ratio
        index = p.numerator // p.denominator
        if index >= self.source_frames - 1:
            return Slot(self.source_frames - 1, Fraction(0))
        return Slot(index, p - index)

    def outputs_per_source(self) -> list[int]:
        """For every source frame i, how many output frames have ``slot(n).index == i``.

        Work grows with the source's length, not the output's: output frame n starts from source
        frame floor(n * ratio), so the first one starting from i is ceil(i / ratio).
        """
        per_source = 1 / self.ratio
        num, den = per_source.numerator, per_source.denominator
        firsts = [-(-i * num // den) for i in range(self.source_frames)]
        return [b - a for a, b in itertools.pairwise(firsts)] + [self.output_frames - firsts[-1]]
