"""Exact time mapping between source and output frames."""

from __future__ import annotations

from fractions import Fraction

import pytest

from vs_superslomo.timing import Timing

RATES = [
    (Fraction(24), Fraction(48)),
    (Fraction(24000, 1001), Fraction(60000, 1001)),
    (Fraction(25), Fraction(60000, 1001)),
    (Fraction(60), Fraction(24)),  # fewer output frames than source frames
    (Fraction(30000, 1001), Fraction(30000, 1001)),
    (Fraction(2**40 + 1, 7), Fraction(2**31 - 1)),
]


@pytest.mark.parametrize(("src", "out"), RATES)
@pytest.mark.parametrize("frames", [1, 2, 7, 50])
def test_outputs_per_source_counts_the_slots_that_start_from_each_source_frame(
    src: Fraction, out: Fraction, frames: int
) -> None:
    timing = Timing(frames, src, out)
    expected = [0] * frames
    for n in range(timing.output_frames):
        expected[timing.slot(n).index] += 1
    assert timing.outputs_per_source() == expected
    assert sum(expected) == timing.output_frames


def test_slots_of_a_factor_of_four() -> None:
    timing = Timing.for_factor(3, Fraction(24), 4)
    assert timing.output_frames == 12
    assert [(s.index, s.t) for s in map(timing.slot, range(6))] == [
        (0, 0), (0, Fraction(1, 4)), (0, Fraction(1, 2)), (0, Fraction(3, 4)), (1, 0), (1, Fraction(1, 4))]
    assert all(timing.slot(n) == timing.slot(8) for n in range(8, 12))  # the last source frame repeats
