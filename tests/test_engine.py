"""The engine: padding and cropping, the flow cache, flow_scale, devices, and its image API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_model

from vs_superslomo import Interpolator
from vs_superslomo.engine import BoundedComputeCache, PairKey, ReadAhead, usable_cpus


@pytest.fixture(scope="module")
def engine() -> Interpolator:
    return Interpolator(make_model(width=4), device="cpu")


@pytest.mark.parametrize(("h", "w"), [(1, 1), (5, 7), (17, 33), (32, 32), (45, 64), (31, 100)])
def test_any_frame_size_comes_back_exactly(engine: Interpolator, h: int, w: int) -> None:
    a, b = np.random.rand(h, w, 3).astype(np.float32), np.random.rand(h, w, 3).astype(np.float32)
    out = engine.interpolate(a, b, [0.5])
    assert len(out) == 1 and out[0].shape == (h, w, 3) and out[0].dtype == np.float32
    assert np.isfinite(out[0]).all() and out[0].min() >= 0 and out[0].max() <= 1


def test_padding_is_replication_not_resizing(engine: Interpolator) -> None:
    torch.manual_seed(0)
    a, b = torch.rand(1, 3, 40, 50), torch.rand(1, 3, 40, 50)
    # Two noise frames are unrelated, so the fail-safe would blend them (fallback.py); padding is the point here.
    got = Interpolator(engine.model, device="cpu", fallback=False).interpolate_tensors(a, b, [0.4])
    pa, pb = (F.pad(x, (0, 14, 0, 24), mode="replicate") for x in (a, b))
    with torch.inference_mode():
        full = engine.model(pa, pb, torch.tensor([0.4])).clamp(0, 1)
    assert torch.allclose(got, full[..., :40, :50], atol=1e-5)


def test_sixteen_bit_frames_are_read_as_their_share_of_65535(engine: Interpolator) -> None:
    gen = torch.Generator().manual_seed(5)
    a, b = (torch.randint(0, 65536, (1, 3, 40, 50), generator=gen, dtype=torch.int32) for _ in range(2))
    as_float = engine.interpolate_tensors(a.float() / 65535, b.float() / 65535, [0.3])
    as_uint16 = engine.interpolate_tensors(a.to(torch.uint16), b.to(torch.uint16), [0.3])
    assert torch.allclose(as_uint16, as_float, atol=1e-5)


def test_frames_given_as_functions_are_read_only_when_a_pair_is_computed(engine: Interpolator) -> None:
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    reads = []

    def frame(x: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: reads.append(1) or x

    engine.flow_cache.clear()
    first = engine.interpolate_tensors(a, b, [0.5], key="lazy")
    again = engine.render(frame(a), frame(b), [0.5], key="lazy").frames
    assert reads == [] and torch.equal(first, again)
    engine.render(frame(a), frame(b), [0.5], key="new")
    assert len(reads) == 2


def test_pairs_named_by_their_frames_share_the_frame_between_them(engine: Interpolator) -> None:
    frames = [torch.rand(1, 3, 32, 48) for _ in range(3)]
    engine.flow_cache.clear()
    before = engine.frame_cache.computations
    shared = [engine.interpolate_tensors(frames[k], frames[k + 1], [0.4], key=PairKey(("clip", k), ("clip", k + 1)))
              for k in range(2)]
    assert engine.frame_cache.computations - before == 3  # frame 1 prepared once for both pairs
    states = [engine.flow_cache.get(PairKey(("clip", k), ("clip", k + 1)), lambda: None) for k in range(2)]
    assert states[0].i1 is states[1].i0
    alone = [engine.interpolate_tensors(frames[k], frames[k + 1], [0.4]) for k in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(shared, alone, strict=True))


def test_flows_are_computed_once_per_pair_and_reused(engine: Interpolator) -> None:
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    engine.flow_cache.clear()
    before = engine.flow_cache.computations
    first = engine.interpolate_tensors(a, b, [0.25], key=("pair", 7))
    second = engine.interpolate_tensors(a, b, [0.25, 0.5, 0.75], key=("pair", 7))
    assert engine.flow_cache.computations - before == 1
    assert torch.allclose(first[0], second[0], atol=1e-6)


def test_cache_is_bounded_and_never_computes_a_pair_twice_concurrently() -> None:
    cache = BoundedComputeCache(3)
    running = {"now": 0, "max": 0}
    lock = threading.Lock()
    calls: dict[int, int] = {}
    gate = threading.Event()

    def compute(key: int) -> int:
        with lock:
            calls[key] = calls.get(key, 0) + 1
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        gate.wait(0.05)
        with lock:
            running["now"] -= 1
        return key * 10

    results: list[int] = []

    def worker(key: int) -> None:
        results.append(cache.get(key, lambda: compute(key)))

    threads = [threading.Thread(target=worker, args=(0,)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == {0: 1} and results == [0] * 16
    for k in range(1, 50):
        cache.get(k, lambda k=k: k)
    assert len(cache) <= 3


def test_failed_computation_is_not_cached() -> None:
    cache = BoundedComputeCache(2)

    def boom() -> int:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.get("k", boom)
    assert cache.get("k", lambda: 5) == 5


@pytest.mark.parametrize(("scale", "net_scale"), [(0.5, 1.0), (0.25, 1.0), (0.5, 0.25)])
def test_flow_scale_runs_the_flow_net_on_smaller_frames(scale: float, net_scale: float) -> None:
    model = make_model(width=4, flow_net_scale=net_scale)  # a flow U-Net of its own scale: both apply
    seen: list[tuple[int, ...]] = []
    hook = model.flow_net.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    engine = Interpolator(model, device="cpu", flow_scale=scale)
    out = engine.interpolate(np.random.rand(70, 90, 3).astype(np.float32),
                             np.random.rand(70, 90, 3).astype(np.float32), [0.5])
    hook.remove()
    assert out[0].shape == (70, 90, 3)
    padded = engine.multiple * -(-70 // engine.multiple), engine.multiple * -(-90 // engine.multiple)
    small = tuple(int(side * scale * net_scale) for side in padded)
    assert seen == [(1, 6, *small)] and all(side % 32 == 0 for side in small)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"flow_scale": 0.3}, "flow_scale"), ({"device": "tpu"}, "device"), ({"fp16": True}, "fp16"),
     ({"max_batch": 0}, "max_batch"), ({"dis_preset": "slow"}, "dis_preset must be"),
     ({"dis_preset": "fast"}, "only to models with DIS flows")],
)
def test_bad_engine_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Interpolator(make_model(width=4), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("t", [0.0, 1.0, -0.1, 1.5])
def test_timesteps_must_be_inside_the_pair(engine: Interpolator, t: float) -> None:
    with pytest.raises(ValueError, match="strictly between"):
        engine.interpolate(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32), [t])


def test_batches_of_timesteps_match_single_calls() -> None:
    engine = Interpolator(make_model(width=4), device="cpu", max_batch=2)
    a, b = torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40)
    batch = engine.interpolate_tensors(a, b, [0.1, 0.3, 0.6, 0.9, 0.95])
    for i, t in enumerate([0.1, 0.3, 0.6, 0.9, 0.95]):
        assert torch.allclose(batch[i], engine.interpolate_tensors(a, b, [t])[0], atol=1e-5)


def test_frames_do_not_depend_on_the_torch_thread_count_of_the_calling_thread() -> None:
    # torch keeps its thread count per OS thread, fixed when a thread first runs torch code, and a
    # convolution split over another count differs in the last bit: a VapourSynth worker thread that
    # first ran torch under another setting gave other frames. The engine applies its own count.
    engine = Interpolator(make_model(), threads=2)
    gen = torch.Generator().manual_seed(3)
    a, b = torch.rand(1, 3, 48, 64, generator=gen), torch.rand(1, 3, 48, 64, generator=gen)
    here = engine.interpolate_tensors(a, b, [0.5])
    there: list[torch.Tensor] = []
    previous = torch.get_num_threads()

    def worker() -> None:
        torch.set_num_threads(1)
        torch.ones(8).sum()
        there.append(engine.interpolate_tensors(a, b, [0.5]))

    try:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(here, there[0])


def test_frames_of_several_threads_are_evaluated_side_by_side_on_the_cpu() -> None:
    engine = Interpolator(make_model(width=4), device="cpu", threads=1)
    assert engine.threads == 1 and engine.concurrent == max(1, usable_cpus())
    inside, most = 0, 0
    lock = threading.Lock()
    original = engine._pair_state

    def counting(rgb0: torch.Tensor, rgb1: torch.Tensor, key: object = None):  # type: ignore[no-untyped-def]
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.2)  # long enough for the other thread to arrive
            return original(rgb0, rgb1, key)
        finally:
            with lock:
                inside -= 1

    engine._pair_state = counting  # type: ignore[method-assign]
    frames = [torch.rand(1, 3, 32, 32) for _ in range(4)]
    threads = [threading.Thread(target=engine.render, args=(frames[2 * i], frames[2 * i + 1], [0.5]))
               for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == min(2, engine.concurrent)
    alone = Interpolator(make_model(width=4), device="cpu", threads=usable_cpus())
    assert alone.concurrent == 1


@pytest.mark.skipif(usable_cpus() < 2, reason="reading ahead needs a second CPU")
def test_the_next_pair_is_prepared_ahead_and_then_not_computed_again() -> None:
    engine = Interpolator(make_model(width=4), device="cpu", threads=1)
    a, b, c = (torch.rand(1, 3, 40, 48) for _ in range(3))
    first = engine.render(a, b, [0.5], key=0).frames
    engine.prepare_ahead(b, c, key=1)
    deadline = time.monotonic() + 30
    while engine.flow_cache.computations < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    ahead = engine.render(b, c, [0.5], key=1).frames
    assert engine.flow_cache.computations == 2  # pair 1 came from the read-ahead
    engine.prepare_ahead(b, c, key=1)  # cached: nothing is started
    assert engine.flow_cache.computations == 2
    fresh = Interpolator(engine.model, device="cpu", threads=1)
    assert torch.equal(ahead, fresh.render(b, c, [0.5]).frames)
    assert torch.equal(first, fresh.render(a, b, [0.5]).frames)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (our CI has none)")
def test_cuda_fp16_matches_cpu_roughly() -> None:
    model = make_model(width=4)
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    cpu = Interpolator(model, device="cpu").interpolate_tensors(a, b, [0.5])
    gpu = Interpolator(make_model(width=4), device="cuda", fp16=True).interpolate_tensors(a, b, [0.5])
    assert (cpu - gpu).abs().max() < 0.02


def test_closing_the_read_ahead_waits_for_the_running_pair_and_drops_the_queued_ones() -> None:
    # The filter closes the read-ahead when its VapourSynth environment ends (vspipe --end N stops with later
    # pairs queued; an editor reloads the script): nothing of the old script may keep running.
    ahead = ReadAhead()
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(10)
        done.append("running")

    ahead.submit(slow)
    ahead.submit(done.append, "queued")
    assert started.wait(10)
    closer = threading.Thread(target=ahead.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # waiting for the pair in progress
    release.set()
    closer.join(10)
    assert not closer.is_alive() and done == ["running"]
    ahead.submit(done.append, "after")
    ahead.close()
    assert done == ["running"]


def test_the_shipped_model_interpolates_almost_the_same_frames_without_refinement() -> None:
    # The shipped U-Net's output is nearly constant (model card): skipping it changes frames only a little, and
    # nothing of it is computed for the pair.
    from vs_superslomo import load_model

    model = load_model()
    rgb = torch.rand(1, 3, 90, 64).repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    rgb = F.avg_pool2d(rgb, 5, stride=1, padding=2)
    a, b = rgb[..., :, 8:248], rgb[..., :, 0:240]  # a textured pan of 8 px
    refined = Interpolator(model, device="cpu").render(a, b, [0.25, 0.5], key="pair")
    plain_engine = Interpolator(model, device="cpu", refine=False)
    plain = plain_engine.render(a, b, [0.25, 0.5], key="pair")
    assert plain_engine.flow_cache.get("pair", lambda: None).features is None
    difference = (plain.frames - refined.frames).abs()
    assert 0 < float(difference.max()) < 0.05 and float(difference.mean()) < 2e-3


def test_an_interpolation_unet_of_zeros_is_skipped_as_refine_false_would() -> None:
    # A flow-only run's model: its U-Net's output layer is zero, so running it would change nothing (network test).
    model = make_model(width=4)
    rgb = F.avg_pool2d(torch.rand(1, 3, 64, 88), 5, stride=1, padding=2)
    a, b = rgb[..., :, 8:88], rgb[..., :, 0:80]
    assert model.refines and Interpolator(model, device="cpu").refine
    with torch.no_grad():
        for parameter in model.interp_net.conv3.parameters():
            parameter.zero_()
    assert not model.refines
    skipping = Interpolator(model, device="cpu")
    frames = skipping.render(a, b, [0.25, 0.5], key="pair").frames
    assert not skipping.refine and skipping.flow_cache.get("pair", lambda: None).features is None
    running = Interpolator(model, device="cpu")
    running.refine = True  # as before models knew whether their U-Net refines
    reference = running.render(a, b, [0.25, 0.5], key="pair").frames
    assert running.flow_cache.get("pair", lambda: None).features is not None
    torch.testing.assert_close(frames, reference, atol=1e-5, rtol=0)


def test_without_the_unet_frames_are_padded_only_as_far_as_dis_and_the_blocks_need() -> None:
    from vs_superslomo import load_model

    model = load_model()
    rgb = torch.rand(1, 3, 18, 36).repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    rgb = F.avg_pool2d(rgb, 5, stride=1, padding=2)
    a, b = rgb[..., :, 6:126], rgb[..., :, 0:120]  # 72x120, a 6-px pan
    plain = Interpolator(model, device="cpu", refine=False)
    as_for_the_unet = Interpolator(model, device="cpu", refine=False)
    as_for_the_unet.multiple = Interpolator(model, device="cpu").multiple
    assert (plain.multiple, as_for_the_unet.multiple) == (16, 64)
    frames = plain.render(a, b, [0.25, 0.5], key="pair").frames
    assert plain.flow_cache.get("pair", lambda: None).i0.shape[-2:] == (80, 128)  # not 128 x 128
    reference = as_for_the_unet.render(a, b, [0.25, 0.5], key="pair").frames
    assert frames.shape == reference.shape == (2, 3, 72, 120)
    assert torch.allclose(frames, reference, atol=1e-5)
    tiny = plain.render(torch.rand(1, 3, 5, 9), torch.rand(1, 3, 5, 9), [0.5]).frames  # DIS needs 12 px a side
    assert tiny.shape == (1, 3, 5, 9) and torch.isfinite(tiny).all()
