"""Time mapping: which source pair and timestep each output frame shows. Pure arithmetic, exact.

Output frame n is shown at time n / out_fps; in source frames that is p = n * src_fps / out_fps.
Frame n interpolates between source frames i = floor(p) and i + 1 at t = p - i; when t == 0 it is
source frame i itself, and slots after the last source frame repeat it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Slot:
    """Output frame n shows source frame ``index`` (t == 0) or interpolates index -> index + 1 at t."""

    index: int
    t: Fraction

    @property
    def is_source(self) -> bool:
        return self.t == 0


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

    def source_index_per_output(self) -> list[int]:
        """For every output frame, the source frame it starts from (the pair's first frame)."""
        return [self.slot(n).index for n in range(self.output_frames)]
