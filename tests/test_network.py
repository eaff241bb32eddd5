"""The Super SloMo network: architecture, flow approximation, warping and fusion."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import make_model

from vs_superslomo import ModelConfig, SuperSloMo
from vs_superslomo.network import (
    Acceleration,
    approximate_flows,
    backward_warp,
    consistency_trust,
    correlation,
    quadratic_acceleration,
)


def test_paper_width_has_39_6_million_parameters() -> None:
    net = SuperSloMo(ModelConfig(width=32))
    count = sum(p.numel() for p in net.parameters())
    assert round(count / 1e6, 1) == 39.6


def test_unet_channels_match_the_paper() -> None:
    net = SuperSloMo(ModelConfig(width=8))
    assert net.flow_net.conv1.in_channels == 6 and net.flow_net.conv3.out_channels == 4
    assert net.interp_net.conv1.in_channels == 20 and net.interp_net.conv3.out_channels == 5
    assert net.flow_net.conv1.kernel_size == (7, 7) and net.flow_net.down1.conv1.kernel_size == (5, 5)
    assert net.flow_net.down5.conv1.kernel_size == (3, 3)


def test_flow_approximation_formulas() -> None:
    # Seeded, and with an absolute tolerance for float32 rounding: a difference of two products can cancel to
    # near 0, where allclose's default atol (1e-8) failed one draw in a few of the unseeded global generator.
    gen = torch.Generator().manual_seed(0)
    f01 = torch.randn(1, 2, 4, 4, generator=gen)
    f10 = torch.randn(1, 2, 4, 4, generator=gen)
    t = torch.tensor(0.3).view(1, 1, 1, 1)
    ft0, ft1 = approximate_flows(f01, f10, t)
    assert torch.allclose(ft0, -(1 - 0.3) * 0.3 * f01 + 0.09 * f10, atol=1e-6)
    assert torch.allclose(ft1, (0.7**2) * f01 - 0.3 * 0.7 * f10, atol=1e-6)


def test_exact_warp_with_zero_flow_is_identity_and_integer_shift_moves_pixels() -> None:
    img = torch.rand(1, 3, 9, 13)
    zero = torch.zeros(1, 2, 9, 13)
    assert torch.allclose(backward_warp(img, zero), img, atol=1e-6)
    shift = torch.zeros(1, 2, 9, 13)
    shift[:, 0] = 2.0  # sample two pixels to the right
    out = backward_warp(img, shift)
    assert torch.allclose(out[..., :-2], img[..., 2:], atol=1e-5)
    assert torch.allclose(out[..., -2:], img[..., -1:].expand(-1, -1, -1, 2), atol=1e-5)  # border padding


def test_bicubic_warp_keeps_detail_that_bilinear_blurs_at_fractional_offsets() -> None:
    torch.manual_seed(0)
    # Detail a few pixels wide, like real footage (white noise is beyond any interpolator).
    img = F.interpolate(torch.rand(1, 3, 12, 12), size=(32, 32), mode="bilinear", align_corners=False)
    zero = torch.zeros(1, 2, 32, 32)
    assert torch.allclose(backward_warp(img, zero, resample="bicubic"), img, atol=1e-5)
    there = torch.zeros(1, 2, 32, 32)
    there[:, 0] = 0.5
    back = -there
    bilinear = backward_warp(backward_warp(img, there), back)
    bicubic = backward_warp(backward_warp(img, there, resample="bicubic"), back, resample="bicubic")
    inner = (..., slice(2, -2), slice(2, -2))  # away from the border padding
    bilinear_error = (bilinear - img)[inner].abs().mean()
    bicubic_error = (bicubic - img)[inner].abs().mean()
    assert bicubic_error < 0.7 * bilinear_error


def test_resample_setting_decides_how_the_output_samples_the_inputs() -> None:
    net = make_model(resample="bicubic")
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        i0, i1 = net.normalize(a), net.normalize(b)
        f01, f10 = net.compute_flows(i0, i1)
        syn = net.synthesize(i0, i1, f01, f10, torch.tensor([0.5]))
        g0 = backward_warp(i0, syn.flow_t0, resample="bicubic")
        g1 = backward_warp(i1, syn.flow_t1, resample="bicubic")
        v0 = syn.visibility_t0
        expected = (v0 * g0 + (1 - v0) * g1) / (v0 + (1 - v0)) + net.get_buffer("mean")
    assert torch.allclose(syn.frame, expected, atol=1e-5)
    assert ModelConfig.from_json(net.config.to_json()).resample == "bicubic"
    assert ModelConfig.from_json('{"width": 8}').resample == "bilinear"  # files written before the setting


def test_legacy_warp_reproduces_the_original_normalisation() -> None:
    img = torch.rand(1, 3, 8, 10)
    flow = torch.randn(1, 2, 8, 10)
    h, w = 8, 10
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    x = 2 * ((xs + flow[0, 0]) / w - 0.5)
    y = 2 * ((ys + flow[0, 1]) / h - 0.5)
    expected = F.grid_sample(img, torch.stack((x, y), -1)[None], align_corners=True)
    assert torch.allclose(backward_warp(img, flow, "legacy"), expected, atol=1e-6)


def test_any_number_of_timesteps_in_one_batch() -> None:
    net = make_model()
    a, b = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        batch = net(a, b, torch.tensor([0.1, 0.5, 0.9]))
        single = net(a, b, torch.tensor([0.5]))
    assert batch.shape == (3, 3, 64, 96)
    assert torch.allclose(batch[1], single[0], atol=1e-5)


def test_fusion_follows_the_visibility_formula() -> None:
    net = make_model()
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    t = torch.tensor([0.25])
    with torch.inference_mode():
        i0, i1 = net.normalize(a), net.normalize(b)
        f01, f10 = net.compute_flows(i0, i1)
        syn = net.synthesize(i0, i1, f01, f10, t)
        g0 = backward_warp(i0, syn.flow_t0)
        g1 = backward_warp(i1, syn.flow_t1)
        v0 = syn.visibility_t0
        expected = (0.75 * v0 * g0 + 0.25 * (1 - v0) * g1) / (0.75 * v0 + 0.25 * (1 - v0)) + net.mean
    assert torch.allclose(syn.frame, expected, atol=1e-5)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="width"):
        ModelConfig(width=0)
    with pytest.raises(ValueError, match="warp"):
        ModelConfig(warp="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resample"):
        ModelConfig(resample="lanczos")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown config keys"):
        ModelConfig.from_json('{"width": 8, "depth": 3}')
    with pytest.raises(ValueError, match="flow_norm"):
        ModelConfig(flow="dis", flow_norm=True)
    with pytest.raises(ValueError, match="flow_net_scale"):
        ModelConfig(flow="dis", flow_net_scale=0.5)
    with pytest.raises(ValueError, match="flow_net_scale must be one of"):
        ModelConfig(flow_net_scale=0.3)
    with pytest.raises(ValueError, match="flow_correlation"):
        ModelConfig(flow="dis", flow_correlation=2)
    with pytest.raises(ValueError, match="flow_correlation must be"):
        ModelConfig(flow_correlation=-1)
    with pytest.raises(ValueError, match="flow_correlation_scale must be one of"):
        ModelConfig(flow_correlation=2, flow_correlation_scale=0.25)
    with pytest.raises(ValueError, match=r"flow_peak .* needs flow_correlation"):
        ModelConfig(flow_peak=True)
    with pytest.raises(ValueError, match=r"flow_residual .* needs flow_peak"):
        ModelConfig(flow_correlation=2, flow_residual=True)
    with pytest.raises(ValueError, match=r"flow_contrast .* needs flow_correlation"):
        ModelConfig(flow_contrast=True)
    with pytest.raises(ValueError, match=r"flow_correlation_scale places .* needs flow_correlation"):
        ModelConfig(flow_correlation_scale=1.0)


def test_a_normalised_flow_unet_keeps_the_papers_weights_and_its_activations_at_unit_scale() -> None:
    torch.manual_seed(0)
    plain, normed = (SuperSloMo(ModelConfig(width=4, flow_norm=norm)) for norm in (False, True))
    assert plain.state_dict().keys() == normed.state_dict().keys()  # no new parameters: the paper's file layout
    bottom: dict[bool, torch.Tensor] = {}
    for net in (plain, normed):
        assert net.flow_net is not None
        net.flow_net.down5.register_forward_hook(lambda m, i, out, n=net.config.flow_norm: bottom.update({n: out}))
        flows = net.compute_flows(torch.rand(2, 3, 64, 64) - 0.5, torch.rand(2, 3, 64, 64) - 0.5)
        assert all(f.shape == (2, 2, 64, 64) for f in flows)
    # the paper's default initialisation shrinks activations tenfold and more on the way down (the slow start
    # of its flow U-Net); normalised, the bottom of the U-Net sees unit-scale features
    assert bottom[False].std() < 0.1 < 0.5 < bottom[True].std() < 2
    assert not plain.interp_net.norm and not normed.interp_net.norm  # only the flow U-Net is normalised


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_a_flow_unet_at_a_lower_scale_sees_small_frames_and_gives_flows_in_the_frames_pixels(scale: float) -> None:
    net = SuperSloMo(ModelConfig(width=4, flow_net_scale=scale)).eval()
    assert net.flow_net is not None and net.size_multiple == round(32 / scale)
    seen: list[tuple[int, ...]] = []
    net.flow_net.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape)))
    # a flow U-Net whose output is a constant motion of (1, -2) / (-3, 0.5) of its own pixels
    for parameter in net.flow_net.conv3.parameters():
        torch.nn.init.zeros_(parameter)
    with torch.no_grad():
        net.flow_net.conv3.bias.copy_(torch.tensor([1.0, -2.0, -3.0, 0.5]))
        f01, f10 = net.compute_flows(torch.rand(1, 3, 128, 256) - 0.5, torch.rand(1, 3, 128, 256) - 0.5)
    assert seen == [(1, 6, round(128 * scale), round(256 * scale))]
    assert f01.shape == f10.shape == (1, 2, 128, 256)
    torch.testing.assert_close(f01[0, :, 5, 7], torch.tensor([1.0, -2.0]) / scale)
    torch.testing.assert_close(f10[0, :, 100, 200], torch.tensor([-3.0, 0.5]) / scale)


def test_correlation_peaks_at_the_displacement_that_moves_one_frame_onto_the_other() -> None:
    torch.manual_seed(0)
    a = torch.rand(1, 3, 40, 48)
    radius, dy, dx = 3, 2, -1
    b = torch.roll(a, shifts=(dy, dx), dims=(2, 3))  # b(y, x) = a(y - dy, x - dx): a's content moved by (dy, dx)
    costs = correlation(a, b, radius)
    assert costs.shape == (1, (2 * radius + 1) ** 2, 40, 48)
    inside = costs[..., 8:-8, 8:-8]
    best = inside.argmax(dim=1)
    assert bool((best == (dy + radius) * (2 * radius + 1) + (dx + radius)).all())
    torch.testing.assert_close(inside.amax(dim=1), torch.ones_like(inside[:, 0]), atol=5e-3, rtol=0)


@pytest.mark.parametrize(("scale", "radius"), [(0.5, 2), (1.0, 4)])
def test_a_flow_unet_with_correlation_sees_the_frames_and_where_each_pixel_matches_the_other_frame(
        scale: float, radius: int) -> None:
    net = SuperSloMo(ModelConfig(width=4, flow_correlation=radius, flow_correlation_scale=scale)).eval()
    n = (2 * radius + 1) ** 2
    assert net.flow_net is not None and net.flow_net.conv1.in_channels == 6 + 2 * n
    seen: list[torch.Tensor] = []
    net.flow_net.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    torch.manual_seed(1)
    i0 = F.interpolate(torch.rand(1, 3, 32, 32), size=(128, 128), mode="bicubic", align_corners=False) - 0.5
    i1 = torch.roll(i0, shifts=(4, -2), dims=(2, 3))  # frame 0's content moved 4 px down, 2 px left
    with torch.no_grad():
        net.compute_flows(i0, i1)
    x = seen[0]
    assert x.shape == (1, 6 + 2 * n, 128, 128) and torch.equal(x[:, :6], torch.cat((i0, i1), dim=1))
    forward, backward = x[:, 6:6 + n], x[:, 6 + n:]
    torch.testing.assert_close(forward.sum(dim=1), torch.ones(1, 128, 128))  # a softmax over displacements
    # at the correlation's scale the match is 4 * scale rows down and 2 * scale columns left, and the other way
    # round for frame 1
    dy, dx, side = round(4 * scale), round(-2 * scale), 2 * radius + 1
    inside = (slice(None), slice(None), slice(24, -24), slice(24, -24))
    assert bool((forward[inside].argmax(dim=1) == (dy + radius) * side + (dx + radius)).all())
    assert bool((backward[inside].argmax(dim=1) == (-dy + radius) * side + (-dx + radius)).all())


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_a_flow_unet_with_peaks_sees_each_pixels_best_match_to_a_fraction_of_a_pixel(scale: float) -> None:
    net = SuperSloMo(ModelConfig(width=4, flow_correlation=4, flow_correlation_scale=scale, flow_peak=True)).eval()
    assert net.flow_net is not None and net.flow_net.conv1.in_channels == 6 + 2 * 81 + 4
    seen: list[torch.Tensor] = []
    net.flow_net.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    torch.manual_seed(1)
    i0 = F.interpolate(torch.rand(1, 3, 16, 16), size=(64, 64), mode="bicubic", align_corners=False) - 0.5
    motion = torch.tensor([1.5, -2.25])  # x, y: frame 0's content moved 1.5 px right, 2.25 px up in frame 1
    i1 = backward_warp(i0, -motion.view(1, 2, 1, 1).expand(1, 2, 64, 64))
    with torch.no_grad():
        net.compute_flows(i0, i1)
    inside = seen[0][0, -4:, 16:-16, 16:-16]
    forward, backward = inside[:2], inside[2:]
    torch.testing.assert_close(forward.mean(dim=(1, 2)), motion, atol=0.15, rtol=0)
    torch.testing.assert_close(backward.mean(dim=(1, 2)), -motion, atol=0.15, rtol=0)
    assert float((forward - motion.view(2, 1, 1)).norm(dim=0).max()) < 1.0


def test_a_residual_flow_unet_starts_as_the_block_matcher_and_keeps_a_pans_size() -> None:
    config = ModelConfig(width=4, flow_norm=True, flow_net_scale=0.5, flow_correlation=4, flow_correlation_scale=1.0,
                         flow_peak=True, flow_residual=True)
    net = SuperSloMo(config).eval()
    assert net.flow_net is not None and not any(bool(p.any()) for p in net.flow_net.conv3.parameters())
    torch.manual_seed(1)
    i0 = F.interpolate(torch.rand(1, 3, 32, 32), size=(128, 128), mode="bicubic", align_corners=False) - 0.5
    motion = torch.tensor([5.0, -3.0])  # x, y in the frame's pixels
    i1 = backward_warp(i0, -motion.view(1, 2, 1, 1).expand(1, 2, 128, 128))
    with torch.no_grad():
        f01, f10 = net.compute_flows(i0, i1)
        inside = (0, slice(None), slice(32, -32), slice(32, -32))
        torch.testing.assert_close(f01[inside].mean(dim=(1, 2)), motion, atol=0.2, rtol=0)
        torch.testing.assert_close(f10[inside].mean(dim=(1, 2)), -motion, atol=0.2, rtol=0)
        # a trained correction is added to the matches
        net.flow_net.conv3.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        moved, _ = net.compute_flows(i0, i1)
    torch.testing.assert_close(moved[:, 0] - f01[:, 0], torch.full_like(f01[:, 0], 1.0 / 0.5))


def test_a_flow_unet_with_contrast_sees_where_the_frames_are_flat() -> None:
    config = ModelConfig(width=4, flow_correlation=2, flow_correlation_scale=1.0, flow_peak=True, flow_contrast=True)
    net = SuperSloMo(config).eval()
    assert net.flow_net is not None and net.flow_net.conv1.in_channels == 6 + 2 * 25 + 2 + 4
    seen: list[torch.Tensor] = []
    net.flow_net.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    torch.manual_seed(1)
    ramp = torch.linspace(-0.3, 0.3, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)  # smooth shading
    texture = F.interpolate(torch.rand(1, 3, 16, 16), size=(64, 64), mode="bicubic", align_corners=False) - 0.5
    i0 = torch.cat((ramp, texture), dim=2)  # flat above, textured below
    i1 = torch.cat((ramp, torch.roll(texture, 2, dims=3)), dim=2)
    with torch.no_grad():
        net.compute_flows(i0, i1)
    contrast = seen[0][0, 6 + 50 : 6 + 52]
    flat, textured = contrast[:, 8:56, 8:56], contrast[:, 72:120, 8:56]
    assert float(flat.max()) + 1.0 < float(textured.median())  # about -1.4 against 0
    # the peaks stay the last four channels (what flow_residual adds to)
    torch.testing.assert_close(seen[0][0, -4, 80:112, 16:48].mean(), torch.tensor(2.0), atol=0.1, rtol=0)


def test_precomputed_stem_gives_the_same_frames() -> None:
    net = make_model()
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    t = torch.tensor([0.2, 0.7])
    with torch.inference_mode():
        i0, i1 = net.normalize(a), net.normalize(b)
        f01, f10 = net.compute_flows(i0, i1)
        full = net.synthesize(i0, i1, f01, f10, t).frame
        shared = net.synthesize(i0, i1, f01, f10, t, net.pair_features(i0, i1, f01, f10)).frame
    assert torch.allclose(full, shared, atol=1e-5)


@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
def test_fusion_band_by_band_gives_the_whole_frames_rows(resample: str) -> None:
    """The engine renders large frames in bands of rows: each band must be exactly those rows of the whole."""
    net = SuperSloMo(ModelConfig(width=4, unet_scale=0.5, flow="dis", resample=resample)).eval()
    gen = torch.Generator().manual_seed(3)
    a, b = torch.rand(1, 3, 128, 192, generator=gen), torch.rand(1, 3, 128, 192, generator=gen)
    f01 = 6 * torch.randn(1, 2, 128, 192, generator=gen)
    f10 = 6 * torch.randn(1, 2, 128, 192, generator=gen)
    bent = Acceleration(torch.randn(1, 2, 32, 48, generator=gen), torch.randn(1, 2, 32, 48, generator=gen))
    t = torch.tensor([0.3, 0.8])
    with torch.inference_mode():
        i0, i1 = net.normalize(a), net.normalize(b)
        whole = net.synthesize(i0, i1, f01, f10, t, acceleration=bent)
        fusion = net.fusion(i0, i1, f01, f10, t, acceleration=bent)
        bands = [fusion.rows(top, min(128, top + 45)) for top in range(0, 128, 45)]
    for name in ("frame", "flow_t0", "flow_t1", "visibility_t0"):
        assert torch.equal(torch.cat([getattr(band, name) for band in bands], dim=2), getattr(whole, name)), name


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_unet_at_a_reduced_scale_shares_pair_features_and_keeps_full_resolution(scale: float) -> None:
    net = SuperSloMo(ModelConfig(width=4, unet_scale=scale)).eval()
    assert net.size_multiple == round(32 / scale)
    side = net.size_multiple
    a, b = torch.rand(1, 3, side, 2 * side), torch.rand(1, 3, side, 2 * side)
    t = torch.tensor([0.3, 0.6])
    with torch.inference_mode():
        i0, i1 = net.normalize(a), net.normalize(b)
        f01, f10 = net.compute_flows(i0, i1)
        full = net.synthesize(i0, i1, f01, f10, t)
        shared = net.synthesize(i0, i1, f01, f10, t, net.pair_features(i0, i1, f01, f10))
    assert full.frame.shape == (2, 3, side, 2 * side) and full.flow_t0.shape == (2, 2, side, 2 * side)
    assert torch.allclose(full.frame, shared.frame, atol=1e-5)


def test_unet_scale_is_refused_unless_a_supported_power_of_two() -> None:
    with pytest.raises(ValueError, match="unet_scale"):
        ModelConfig(unet_scale=0.3)
    assert ModelConfig.from_json('{"unet_scale": 0.5}').unet_scale == 0.5


def test_a_fresh_consistency_model_fuses_by_the_warps_forward_backward_trust() -> None:
    # A block moves 16 px right over a still background. At t = 1/2, background it covers by then is seen in
    # frame 0 only, background it uncovered in frame 1 only; at init (zero output layer) the visibility
    # follows the flows' round-trip trust and knows which, where a plain model's zero output gives 1/2.
    i0, i1 = torch.rand(1, 3, 32, 96), torch.rand(1, 3, 32, 96)
    f01, f10 = torch.zeros(1, 2, 32, 96), torch.zeros(1, 2, 32, 96)
    f01[:, 0, :, 16:40] = 16.0  # the block in frame 0
    f10[:, 0, :, 32:56] = -16.0  # the block in frame 1
    t = torch.tensor([0.5])
    net = SuperSloMo(ModelConfig(width=4, flow="dis", consistency=True)).eval()
    assert net.interp_net.conv1.in_channels == 22
    with torch.inference_mode():
        out = net.synthesize(i0, i1, f01, f10, t)
        shared = net.synthesize(i0, i1, f01, f10, t, net.pair_features(i0, i1, f01, f10))
        plain_model = SuperSloMo(ModelConfig(width=4, flow="dis")).eval()
        for parameter in plain_model.interp_net.conv3.parameters():
            parameter.zero_()  # the same zero output, without the trust prior
        plain = plain_model.synthesize(i0, i1, f01, f10, t)
    assert torch.allclose(out.frame, shared.frame, atol=1e-5)
    v0 = out.visibility_t0[0, 0]
    assert float(v0[:, 50:54].min()) > 0.9  # covered by t = 1: from frame 0
    assert float(v0[:, 18:22].max()) < 0.1  # uncovered: from frame 1
    assert float(v0[:, 70:90].sub(0.5).abs().max()) < 1e-3  # still background: both
    assert float(plain.visibility_t0.sub(0.5).abs().max()) < 1e-6


def test_trust_is_one_for_consistent_flows_and_a_half_a_pixel_off() -> None:
    forward = torch.full((1, 2, 16, 16), 3.0)
    assert torch.allclose(consistency_trust(forward, -forward), torch.ones(1, 1, 16, 16))
    backward = -forward + torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    assert torch.allclose(consistency_trust(forward, backward)[..., 4:12, 4:12], torch.full((1, 1, 8, 8), 0.5))


def test_zero_acceleration_is_the_papers_approximation_and_acceleration_bends_it() -> None:
    f01, f10 = torch.randn(2, 2, 8, 8) * 5, torch.randn(2, 2, 8, 8) * 5
    t = torch.tensor([0.25, 0.5]).view(2, 1, 1, 1)
    still = Acceleration(torch.zeros_like(f01), torch.zeros_like(f10))
    for a, b in zip(approximate_flows(f01, f10, t), approximate_flows(f01, f10, t, still.bend(t, (8, 8))), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # Uniform motion x(k) = 10 k + 8 k^2: F0->1 = 18, F0->-1 = -2, F1->0 = -18, F1->2 = 34, trusted everywhere.
    flow = lambda v: torch.tensor([v, 0.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4)  # noqa: E731
    one = torch.ones(1, 1, 4, 4)
    bent = quadratic_acceleration(flow(18), flow(-2), 1.0, one, flow(-18), flow(34), 1.0, one)
    half = torch.tensor(0.5).view(1, 1, 1, 1)
    ft0, ft1 = approximate_flows(flow(18), flow(-18), half, bent.bend(half, (4, 4)))
    assert torch.allclose(ft0[:, 0], torch.full((1, 4, 4), -7.0))  # at t = 1/2 a pixel is at 7 px
    assert torch.allclose(ft1[:, 0], torch.full((1, 4, 4), 11.0))
    untrusted = quadratic_acceleration(flow(18), flow(-2), 1.0, 0 * one, flow(-18), flow(34), 1.0, 0 * one)
    assert torch.count_nonzero(untrusted.of0) == 0 and torch.count_nonzero(untrusted.of1) == 0


def test_without_refinement_the_fusion_is_what_a_unet_of_zeros_computes() -> None:
    # A U-Net whose output layer is zero corrects no flow and sees both frames equally (visibility 1/2): the
    # paper's approximation and time weights, which is exactly what fusing without the U-Net computes.
    model = make_model(flow="dis", unet_scale=0.5)
    for parameter in model.interp_net.conv3.parameters():
        torch.nn.init.zeros_(parameter)
    gen = torch.Generator().manual_seed(0)
    i0, i1 = torch.rand(1, 3, 64, 128, generator=gen) - 0.4, torch.rand(1, 3, 64, 128, generator=gen) - 0.4
    f01, f10 = torch.randn(1, 2, 64, 128, generator=gen) * 3, torch.randn(1, 2, 64, 128, generator=gen) * 3
    t = torch.tensor([0.25, 0.5, 0.875])
    with torch.no_grad():
        refined = model.fusion(i0, i1, f01, f10, t).rows(0, 64)
        plain = model.fusion(i0, i1, f01, f10, t, refine=False).rows(0, 64)
    assert torch.allclose(plain.frame, refined.frame, atol=1e-6)
    assert torch.equal(plain.flow_t0, refined.flow_t0) and torch.equal(plain.flow_t1, refined.flow_t1)
    assert torch.all(plain.visibility_t0 == 0.5)
    # and a U-Net that does output something makes a difference
    other = make_model(flow="dis", unet_scale=0.5, seed=1)
    with torch.no_grad():
        assert not torch.allclose(other.fusion(i0, i1, f01, f10, t).rows(0, 64).frame, plain.frame, atol=1e-3)
