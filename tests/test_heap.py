"""Heap trimming: freed pages go back to the system on glibc, and trims come at the stated rate."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from vs_superslomo.heap import HeapTrimmer

# Run in a fresh process, so that free space other tests left in the heaps cannot absorb the churn.
FRAGMENT_AND_TRIM = textwrap.dedent("""
    import threading
    import numpy as np
    from vs_superslomo.heap import HeapTrimmer

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

    def fragment(kept):
        # What a long run leaves: a thread's heap full of freed blocks pinned by a few live ones.
        first = np.ones(60_000)  # freeing one large block raises glibc's mmap threshold above the next
        del first
        blocks = [np.ones(40_000) for _ in range(2_000)]  # 2,000 x 320 KB from the thread's heap
        kept.extend(blocks[::50])

    kept = []
    before = rss_mb()
    worker = threading.Thread(target=fragment, args=(kept,))
    worker.start()
    worker.join()
    left = rss_mb() - before
    HeapTrimmer(every=1).tick()
    print(f"{left:.0f} {rss_mb() - before:.0f} {len(kept)}")
""")


def test_trim_returns_freed_pages_to_the_system() -> None:
    if not HeapTrimmer().active:
        pytest.skip("malloc_trim is a glibc feature")
    res = subprocess.run([sys.executable, "-c", FRAGMENT_AND_TRIM], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    left_behind, after_trim, kept = (float(x) for x in res.stdout.split())
    assert kept == 40
    assert left_behind > 300, "the allocation pattern no longer fragments the heap; the test proves nothing"
    assert after_trim < left_behind / 2


def test_trims_once_every_n_ticks() -> None:
    trimmer = HeapTrimmer(every=4)
    for _ in range(10):
        trimmer.tick()
    assert trimmer.trims == (2 if trimmer.active else 0)


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HeapTrimmer(every=0)


def test_larger_frames_are_trimmed_more_often() -> None:
    from vs_superslomo.heap import TRIM_EVERY, trim_cadence

    assert trim_cadence(640, 360) == 16 and trim_cadence(1280, 720) == 4 and trim_cadence(1920, 1080) == 1
    assert trim_cadence(64, 64) == TRIM_EVERY and trim_cadence(7680, 4320) == 1
