"""DIS flows for the hybrid model: right direction and size, and a model that uses them."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from conftest import make_model
from skimage import data as skdata

from vs_superslomo.checkpoint import load_model, save_model
from vs_superslomo.classical_flow import dis_flows
from vs_superslomo.flows import interpolate_rgb
from vs_superslomo.network import ModelConfig, backward_warp


def _photo_pair(dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A photograph and the same photograph with its content moved by (dx, dy) pixels."""
    rgb = torch.from_numpy(skdata.astronaut()[100:260, 100:292].copy()).permute(2, 0, 1).float() / 255
    moved = torch.roll(rgb, shifts=(dy, dx), dims=(1, 2))
    return rgb[None], moved[None]


def test_dis_flows_point_both_ways_along_the_motion() -> None:
    i0, i1 = _photo_pair(dx=5, dy=-3)
    f01, f10 = dis_flows(i0, i1)
    assert f01.shape == f10.shape == (1, 2, 160, 192) and f01.dtype == torch.float32
    inner = (slice(None), slice(None), slice(24, -24), slice(24, -24))
    # Backward warping convention: I0(x) = I1(x + F0->1(x)).
    assert torch.allclose(f01[inner].mean(dim=(0, 2, 3)), torch.tensor([5.0, -3.0]), atol=0.2)
    assert torch.allclose(f10[inner].mean(dim=(0, 2, 3)), torch.tensor([-5.0, 3.0]), atol=0.2)
    warped = backward_warp(i1, f01)
    assert (warped - i0)[inner].abs().mean() < 0.2 * (i1 - i0)[inner].abs().mean()


def test_dis_flows_keep_the_batch_and_the_dtype() -> None:
    a, b = _photo_pair(dx=2, dy=0)
    i0, i1 = torch.cat((a, b)).double(), torch.cat((b, a)).double()
    f01, _ = dis_flows(i0, i1)
    assert f01.dtype == torch.float64 and f01.shape[0] == 2
    assert f01[0, 0].mean() > 1.5 and f01[1, 0].mean() < -1.5


def test_frames_converted_band_by_band_give_the_flows_of_the_converted_frames() -> None:
    # The engine hands DIS its normalised frames and the way back, instead of a converted copy of each.
    offset = torch.tensor([0.43, 0.43, 0.40]).view(1, 3, 1, 1)
    n0, n1 = (x - offset for x in _photo_pair(dx=4, dy=-2))  # 160 rows: more than one band
    converted = dis_flows(n0 + offset, n1 + offset)
    banded = dis_flows(n0, n1, to_rgb=lambda x: x + offset)
    assert all(torch.equal(a, b) for a, b in zip(converted, banded, strict=True))
    assert float(converted[0][:, 0].mean()) > 3.5


@pytest.mark.parametrize("preset", ["ultrafast", "fast", "medium"])
def test_flows_do_not_depend_on_what_the_thread_computed_before(preset: str) -> None:
    # On frames too small for the preset's finest scale OpenCV's DIS returned what its buffers held
    # from earlier calls, so a thread's flows depended on the sizes it had seen before.
    i0, i1 = _photo_pair(dx=2, dy=1)
    sizes = [(64, 128), (32, 32), (64, 32), (32, 64), (96, 96), (64, 32)]

    def flows_in_order(order: list[tuple[int, int]], out: dict[tuple[int, int], list[torch.Tensor]]) -> None:
        for h, w in order:
            out.setdefault((h, w), []).extend(dis_flows(i0[..., :h, :w], i1[..., :h, :w], preset))  # type: ignore[arg-type]

    here: dict[tuple[int, int], list[torch.Tensor]] = {}
    flows_in_order(sizes, here)
    elsewhere: dict[tuple[int, int], list[torch.Tensor]] = {}
    fresh_thread = threading.Thread(target=flows_in_order, args=(sizes[::-1], elsewhere))
    fresh_thread.start()
    fresh_thread.join()
    for size, flows in here.items():
        assert all(torch.equal(a, b) for a, b in zip(flows, elsewhere[size], strict=True)), size


def test_unknown_preset_is_refused() -> None:
    a, b = _photo_pair(dx=1, dy=0)
    with pytest.raises(ValueError, match="DIS preset"):
        dis_flows(a, b, preset="slow")  # type: ignore[arg-type]


def test_a_dis_model_has_no_flow_network_and_survives_a_file_round_trip(tmp_path) -> None:
    model = make_model(width=4, flow="dis")
    assert model.flow_net is None
    assert sum(p.numel() for p in model.parameters()) < 0.6 * sum(p.numel() for p in make_model(width=4).parameters())
    save_model(model, tmp_path / "dis.safetensors")
    loaded = load_model(tmp_path / "dis.safetensors")
    assert loaded.config == ModelConfig(width=4, flow="dis")
    i0, i1 = _photo_pair(dx=4, dy=2)
    with torch.inference_mode():
        assert torch.equal(interpolate_rgb(loaded, i0, i1, torch.tensor([0.5])),
                           interpolate_rgb(model, i0, i1, torch.tensor([0.5])))


def test_the_flow_source_is_validated() -> None:
    with pytest.raises(ValueError, match="flow must be"):
        ModelConfig(flow="farneback")  # type: ignore[arg-type]
    assert ModelConfig.from_json('{"width": 8}').flow == "network"


def test_a_dis_model_moves_content_where_blending_doubles_it() -> None:
    # Untrained weights leave the interpolation U-Net's corrections small, so the output is
    # close to the paper's flow approximation fed with DIS flows: the half-way frame of a pan.
    i0, _ = _photo_pair(dx=0, dy=0)
    _, i_half = _photo_pair(dx=3, dy=0)
    _, i1 = _photo_pair(dx=6, dy=0)
    model = make_model(width=4, flow="dis")
    for p in model.interp_net.conv3.parameters():
        torch.nn.init.zeros_(p)
    with torch.inference_mode():
        out = interpolate_rgb(model, i0, i1, torch.tensor([0.5]))
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    ours = (out - i_half)[inner].abs().mean()
    blend = ((i0 + i1) / 2 - i_half)[inner].abs().mean()
    assert ours < 0.3 * blend
    assert np.isfinite(float(ours))


@pytest.mark.parametrize("flow_scale", [1.0, 0.5])
def test_the_engine_runs_a_dis_model_at_any_size_and_flow_scale(flow_scale: float) -> None:
    from vs_superslomo import Interpolator

    engine = Interpolator(make_model(width=4, flow="dis"), flow_scale=flow_scale)
    img0 = np.random.default_rng(0).random((37, 71, 3), dtype=np.float32)
    frames = engine.interpolate(img0, np.roll(img0, 2, axis=1), [0.25, 0.5, 0.75])
    assert [f.shape for f in frames] == [(37, 71, 3)] * 3
    assert all(np.isfinite(f).all() for f in frames)


def test_the_dis_preset_reaches_the_estimator_through_the_filter(tiny_dis_model_path: Path) -> None:
    photo = skdata.astronaut()[100:228, 100:292]
    frames = [np.roll(photo, 4 * k, axis=1) for k in range(2)]
    clip = vs.core.std.BlankClip(width=192, height=128, format=vs.RGB24, length=2)
    clip = vs.core.std.ModifyFrame(clip, clip, lambda n, f: _filled(f, frames[n]))
    outputs = {}
    for preset in ("ultrafast", "medium"):
        out = vs.core.slomo.Interpolate(clip, factor=2, model=str(tiny_dis_model_path), dis_preset=preset)
        with out.get_frame(1) as f:
            outputs[preset] = np.stack([np.asarray(f[p]) for p in range(3)])
    default = vs.core.slomo.Interpolate(clip, factor=2, model=str(tiny_dis_model_path))
    with default.get_frame(1) as f:
        assert np.array_equal(np.stack([np.asarray(f[p]) for p in range(3)]), outputs["medium"])
    assert not np.array_equal(outputs["ultrafast"], outputs["medium"])


def _filled(frame: vs.VideoFrame, rgb: np.ndarray) -> vs.VideoFrame:
    out = frame.copy()
    for p in range(3):
        np.copyto(np.asarray(out[p]), rgb[..., p])
    return out
