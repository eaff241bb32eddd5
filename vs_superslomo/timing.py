"""The time map: which source pair and timestep each output frame shows. Pure arithmetic, exact.

Every source frame i has a start time s(i) (constant rate: i / fps; variable rate: from per-frame
durations or a timecodes file), and the source ends at s(N). Output frame n of a constant-rate output
is shown at T(n) = n / out_fps after the first source frame; it interpolates between the two source
frames whose interval contains it, i = max{i : s(i) <= T(n)} and i + 1, at t = (T - s(i)) / (s(i+1) - s(i)).
When t == 0 it is source frame i itself, and slots after the last source frame's start repeat it.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path


@dataclass(frozen=True)
class Slot:
    """Output frame n shows source frame ``index`` (t == 0) or interpolates index -> index + 1 at t."""

    index: int
    t: Fraction


class TimecodesError(ValueError):
    """A timecodes file that cannot be read or does not fit the clip."""


@dataclass(frozen=True)
class Timing:
    """Exact rational timing between a constant-rate source clip and a constant-rate output."""

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

    def start(self, i: int) -> Fraction:
        """Start time of source frame i in seconds (i == N: the source's end)."""
        return i / self.source_fps

    def time(self, n: int) -> Fraction:
        """When output frame n is shown, in seconds after the first source frame's start."""
        return n / self.output_fps

    def slot(self, n: int) -> Slot:
        p = n * self.ratio
        index = p.numerator // p.denominator
        if index >= self.source_frames - 1:
            return Slot(self.source_frames - 1, Fraction(0))
        return Slot(index, p - index)

    def position(self, n: int, first: int, second: int) -> Fraction:
        """Where output n lies between source frames first (0) and second (1); used across held drawings."""
        return (self.time(n) - self.start(first)) / (self.start(second) - self.start(first))

    def outputs_per_source(self) -> list[int]:
        """For every source frame i, how many output frames have ``slot(n).index == i``.

        Work grows with the source's length, not the output's: output frame n starts from source
        frame floor(n * ratio), so the first one starting from i is ceil(i / ratio).
        """
        firsts = self._first_outputs()
        return [b - a for a, b in itertools.pairwise(firsts)] + [self.output_frames - firsts[-1]]

    def _first_outputs(self) -> list[int]:
        """For every source frame i, the first output frame whose slot starts from it (or later)."""
        per_source = 1 / self.ratio
        num, den = per_source.numerator, per_source.denominator
        return [-(-i * num // den) for i in range(self.source_frames)]


@dataclass(frozen=True)
class VariableTiming(Timing):
    """Timing of a source whose frames have their own start times (variable frame rate).

    ``starts`` holds N + 1 times: the start of every frame and the source's end, strictly increasing.
    ``source_fps`` is the average rate, kept for what needs a rate (a factor, messages).
    """

    starts: tuple[Fraction, ...] = field(default=())

    @classmethod
    def from_durations(cls, durations: Sequence[Fraction], output_fps: Fraction) -> VariableTiming:
        if any(d <= 0 for d in durations):
            raise TimecodesError("every frame needs a positive duration")
        return cls.from_starts([Fraction(0), *itertools.accumulate(durations)], output_fps)

    @classmethod
    def from_starts(cls, starts: Sequence[Fraction], output_fps: Fraction) -> VariableTiming:
        """From N + 1 increasing times (frames' starts and the end), shifted so the first frame starts at 0."""
        if len(starts) < 2 or any(b <= a for a, b in itertools.pairwise(starts)):
            raise TimecodesError("timestamps must increase from frame to frame")
        first = starts[0]
        shifted = tuple(s - first for s in starts)
        return cls(len(starts) - 1, (len(starts) - 1) / shifted[-1], output_fps, shifted)

    @property
    def output_frames(self) -> int:
        span = self.starts[-1] * self.output_fps
        return -(-span.numerator // span.denominator)

    def start(self, i: int) -> Fraction:
        return self.starts[i]

    def slot(self, n: int) -> Slot:
        when = self.time(n)
        index = bisect.bisect_right(self.starts, when, hi=self.source_frames) - 1
        if index >= self.source_frames - 1:
            return Slot(self.source_frames - 1, Fraction(0))
        return Slot(index, self.position(n, index, index + 1))

    def _first_outputs(self) -> list[int]:
        """The first output at or after s(i) is ceil(s(i) * out_fps)."""
        spans = (s * self.output_fps for s in self.starts[: self.source_frames])
        return [-(-span.numerator // span.denominator) for span in spans]


def read_timecodes(path: Path, frames: int, last_duration: Fraction | None = None) -> list[Fraction]:
    """N + 1 times in seconds (each frame's start and the end) from an mkvmerge/bestsource timecodes file.

    v2 lists one start per frame in milliseconds (N lines; N + 1 gives the end too, otherwise the last
    frame lasts ``last_duration`` or as long as the one before it). v1 gives an assumed rate and ranges
    ``first,last,fps`` of frames at other rates.
    """
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise TimecodesError(f"cannot read timecodes file {str(path)!r} ({e})") from None
    header = lines[0].lower() if lines else ""
    body = [line for line in lines[1:] if line and not line.startswith("#")]
    try:
        if "v2" in header:
            return _starts_v2(body, frames, last_duration)
        if "v1" in header:
            return _starts_v1(body, frames)
    except (ValueError, ZeroDivisionError) as e:
        raise TimecodesError(f"timecodes file {str(path)!r}: {e}") from None
    raise TimecodesError(f"timecodes file {str(path)!r} is neither format v1 nor v2 (first line {lines[:1]})")


def _starts_v2(body: list[str], frames: int, last_duration: Fraction | None) -> list[Fraction]:
    starts = [Fraction(text) / 1000 for text in body]
    if len(starts) not in (frames, frames + 1):
        raise ValueError(f"it has {len(starts)} timestamps for a clip of {frames} frames")
    if len(starts) == frames:
        if frames < 2 and last_duration is None:
            raise ValueError("one timestamp gives no duration")
        starts.append(starts[-1] + (last_duration or starts[-1] - starts[-2]))
    return starts


def _starts_v1(body: list[str], frames: int) -> list[Fraction]:
    if not body or not body[0].lower().startswith("assume"):
        raise ValueError("a v1 file starts with 'Assume <fps>'")
    durations = [1 / Fraction(body[0].split()[1])] * frames
    for line in body[1:]:
        first, last, fps = line.split(",")
        for i in range(int(first), min(int(last), frames - 1) + 1):
            durations[i] = 1 / Fraction(fps)
    return [Fraction(0), *itertools.accumulate(durations)]
