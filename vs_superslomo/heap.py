"""Returning freed heap memory to the system during long runs (glibc only).

With glibc's malloc, the frame buffers and tensors that VapourSynth and torch allocate and free from
several threads leave free but unreturned pages in the heaps, so a vspipe process's resident memory
climbs for thousands of frames (by gigabytes at 640x360; a plain source clip alone reaches ~1.7 GB)
although nothing is alive. ``malloc_trim(0)`` hands those pages back; it frees nothing in use.
Other C libraries (and jemalloc or tcmalloc preloaded by the user) do not need it and are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
from collections.abc import Callable

# Interpolated frames between two trims. A trim takes 0.1-0.2 ms when little is free (130 ms to hand
# back 600 MB); an interpolated frame takes 50 ms or more on the CPU.
TRIM_EVERY = 32
# Larger frames are trimmed more often: one trim per this many interpolated pixels, rounded down (16 frames of
# 640x360, 4 of 1280x720, every frame from 1920x1080). Measured through vspipe at 1920x1080, factor 4: peak
# resident memory 2.7 GB trimming every 2 frames, 3.2 GB every 32; at factor 2, 2.14 GB every frame against
# 2.36 GB every 2. A trim is not free: the pages it returns fault in again (at 1280x720, factor 2, every 2
# frames took 7% longer than every 4 and saved 30 MB).
TRIM_PIXELS = 16 * 640 * 360


def trim_cadence(width: int, height: int) -> int:
    """How many interpolated frames of this size to produce between two trims."""
    return max(1, min(TRIM_EVERY, TRIM_PIXELS // (width * height)))


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "malloc_trim"):
        return None  # not glibc (musl, macOS)
    trim = libc.malloc_trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Call :meth:`tick` once per produced frame; every ``every`` ticks the heap is trimmed."""

    def __init__(self, every: int = TRIM_EVERY) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.every = every
        self.trims = 0
        self._trim = _glibc_malloc_trim()
        self._ticks = itertools.count(1)  # next() on a count is atomic under the GIL

    @property
    def active(self) -> bool:
        return self._trim is not None

    def tick(self) -> None:
        if self._trim is not None and next(self._ticks) % self.every == 0:
            self._trim(0)
            self.trims += 1
