"""Training: synthetic ground truth, losses that go down, resumable runs, exported weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from vs_superslomo import Interpolator, load_model
from vs_superslomo.checkpoint import provenance_of
from vs_superslomo.network import ModelConfig, SuperSloMo, UNet, backward_warp
from vs_superslomo.train import sources
from vs_superslomo.train.dataset import FlowItem, synthetic_flow_validation, synthetic_validation, windows
from vs_superslomo.train.losses import LossWeights, end_point_error, end_point_ratio, total_loss
from vs_superslomo.train.synthetic import (
    MotionRanges,
    PhotoBank,
    random_ripple,
    random_scene,
    synthetic_sample,
    transposed,
)
from vs_superslomo.train.trainer import TrainConfig
from vs_superslomo.train.validate import flow_ratio
from vs_superslomo.train.width import narrow_unet, widen_unet


def _photos() -> list[np.ndarray]:
    return [skdata.astronaut(), skdata.coffee(), skdata.chelsea()]


def test_synthetic_frame_at_t_equals_warping_with_the_true_flow_where_visible() -> None:
    bank = PhotoBank(_photos(), [])
    rng = np.random.default_rng(4)
    ranges = MotionRanges(max_shift=20.0, brightness=0.0)
    checked = 0
    for _ in range(4):
        scene = random_scene(bank, rng, 96, ranges)
        for t in (0.3, 0.5, 0.8):
            frame_t, _ = scene.render(t)
            frame_0, _ = scene.render(0.0)
            flow_t0 = scene.flow(t, 0.0)
            warped = backward_warp(frame_0[None], flow_t0[None])[0]
            visible = scene.visible(t, 0.0)
            # stay away from layer edges, where soft mattes mix two motions
            visible = -torch.nn.functional.max_pool2d(-visible[None, None], 5, 1, 2)[0, 0]
            if visible.sum() < 500:
                continue
            err = ((warped - frame_t).abs().mean(0) * visible).sum() / visible.sum()
            assert err < 0.03, err
            checked += 1
    assert checked >= 6


def test_synthetic_flows_are_consistent_both_ways() -> None:
    bank = PhotoBank(_photos(), [])
    scene = random_scene(bank, np.random.default_rng(1), 64, MotionRanges(max_shift=10.0, max_objects=0))
    f01, f10 = scene.flow(0.0, 1.0), scene.flow(1.0, 0.0)
    # background only: following F0->1 then F1->0 returns home
    back = backward_warp(f10[None], f01[None])[0]
    assert (f01 + back)[:, 8:-8, 8:-8].abs().max() < 0.1


def test_a_few_steps_on_a_tiny_model_reduce_the_loss() -> None:
    torch.manual_seed(0)
    bank = PhotoBank(_photos(), [])
    rng = np.random.default_rng(0)
    samples = [synthetic_sample(bank, rng, 64, MotionRanges(max_shift=6.0)) for _ in range(4)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    model = SuperSloMo(ModelConfig(width=4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        i0, i1 = model.normalize(batch["i0"]), model.normalize(batch["i1"])
        f01, f10 = model.compute_flows(i0, i1)
        out = model.synthesize(i0, i1, f01, f10, batch["t"])
        loss, _ = total_loss(batch, out, f01, f10, LossWeights())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])


def test_the_data_cache_is_created_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh home has no ~/.cache: fetching into it must not fail (issue 13)."""
    cache = tmp_path / "home" / ".cache" / "vs-superslomo"
    monkeypatch.setenv("VS_SUPERSLOMO_DATA", str(cache))
    assert sources.cache_dir() == cache and cache.is_dir()
    with tempfile.TemporaryDirectory(dir=sources.cache_dir()) as tmp:  # what fetch_package does first
        assert Path(tmp).parent == cache


@pytest.fixture
def data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small stand-in for the fetched data, laid out exactly as the sources module expects."""
    cache = tmp_path / "data"
    monkeypatch.setenv("VS_SUPERSLOMO_DATA", str(cache))
    (cache / "frames").mkdir(parents=True)
    rng = np.random.default_rng(0)
    big = (rng.random((80, 140, 3)) * 255).astype(np.uint8)
    for clip in sources.CLIPS:
        frames = np.stack([big[8:72, 3 * i : 3 * i + 80] for i in range(14)])
        np.save(cache / "frames" / f"{clip.name}.npy", frames)
        np.save(cache / "frames" / f"{clip.name}.index.npy", np.arange(14))
    photos = _photos() * 4
    for k, (package, pattern) in enumerate(sources.PHOTO_GLOBS):
        root = sources.package_root(package)
        target = root / pattern.replace("*/", "x/").replace("*", f"photo{k}")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photos[k]).save(target)
        (root / ".complete").touch()
    stamps = sources.package_root(sources.STAMP_GLOB[0])
    stamp = stamps / sources.STAMP_GLOB[1].replace("**/*", "animals/stamp")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    rgba = np.concatenate([skdata.chelsea()[:100, :100], np.full((100, 100, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(stamp)
    (stamps / ".complete").touch()
    return cache


def _train(out: Path, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vs_superslomo.train", "--out", str(out), "--config", str(config),
                           *extra], capture_output=True, text=True, timeout=600, env=os.environ.copy())


def test_training_resumes_from_its_saved_step_and_exports_loadable_weights(data_cache: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"width": 4, "crop": 32, "batch": 2, "val_every": 3, "steps": 100}))
    out = tmp_path / "run"
    first = _train(out, config, "--max-steps", "3", "--threads", "1")
    assert first.returncode == 0, first.stderr
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] == 3
    second = _train(out, config, "--max-steps", "5")
    assert second.returncode == 0, second.stderr
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 5
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == [3, 6] or steps[0] == 3  # validation at step 3, nothing repeated after resuming
    baseline = records[0]["classical_baseline"]  # the classical DIS baseline beside the model's scores
    assert set(baseline) == set(records[0]["validation"]) and baseline["real_x2"]["psnr"] > 10
    assert 0 < records[0]["flow_ratio"] < 10  # the flow U-Net's end-point error over zero flow's
    assert first.stdout == second.stdout == ""
    model = load_model(out / "best.safetensors")
    assert model.config.width == 4
    frames = Interpolator(model).interpolate(np.random.rand(40, 50, 3).astype(np.float32),
                                             np.random.rand(40, 50, 3).astype(np.float32), [0.5])
    assert frames[0].shape == (40, 50, 3)


def test_the_same_command_trains_under_torchrun_with_two_processes(data_cache: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"width": 4, "crop": 32, "batch": 4, "val_every": 2, "steps": 100}))
    out = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    run = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "vs_superslomo.train",
                          "--out", str(out), "--config", str(config), "--max-steps", "2"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] == 2 and len(state["rng"]) == 1  # written once, by rank 0
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [2]
    assert load_model(out / "best.safetensors").config.width == 4


def test_a_dis_run_starts_from_the_interpolation_network_of_a_flow_network_model(
    data_cache: Path, tmp_path: Path, tiny_model_path: Path
) -> None:
    config = tmp_path / "dis.json"
    config.write_text(json.dumps({"width": 4, "flow": "dis", "resample": "bilinear", "crop": 32, "batch": 2,
                                  "val_every": 100, "steps": 100, "lr": 0.0, "min_lr": 0.0}))
    out = tmp_path / "run"
    run = _train(out, config, "--init", str(tiny_model_path), "--max-steps", "1")
    assert run.returncode == 0, run.stderr
    state = torch.load(out / "state.pt", weights_only=True)["model"]
    assert not any(key.startswith("flow_net.") for key in state)
    init = load_model(tiny_model_path).interp_net.state_dict()
    assert all(torch.equal(state[f"interp_net.{k}"], v) for k, v in init.items())
    other_resampling = tmp_path / "bicubic.json"
    other_resampling.write_text(json.dumps({"width": 4, "flow": "dis", "resample": "bicubic"}))
    refused = _train(tmp_path / "other", other_resampling, "--init", str(tiny_model_path), "--max-steps", "1")
    assert refused.returncode != 0 and "--init weights have config" in refused.stderr


@pytest.mark.parametrize(("cin", "cout", "narrow", "wide"),
                         [(20, 5, 4, 6), (20, 5, 8, 12), (6, 4, 4, 8), (20, 5, 4, 4)])
def test_a_widened_unet_computes_what_the_narrow_one_did_and_can_learn_more(cin: int, cout: int, narrow: int,
                                                                           wide: int) -> None:
    torch.manual_seed(0)
    small, large = UNet(cin, cout, narrow, False), UNet(cin, cout, wide, False)
    widen_unet(small, large)
    x = torch.randn(2, cin, 64, 96)
    reference = small(x)
    assert reference.abs().mean() > 1e-3
    torch.testing.assert_close(large(x), reference, atol=1e-5, rtol=1e-4)
    if wide == narrow:
        return
    # up5.conv2 reads (upsampled, skip), `wide` channels each; the new ones feed the old outputs nothing yet
    new_inputs = [*range(narrow, wide), *range(wide + narrow, 2 * wide)]
    assert large.up5.conv2.weight[:narrow, new_inputs].abs().sum() == 0
    large(x).square().mean().backward()
    grad = large.up5.conv2.weight.grad
    assert grad is not None and grad[:narrow, new_inputs].abs().sum() > 0  # but they learn to


def test_narrowing_keeps_the_leading_channels_so_it_undoes_a_widening() -> None:
    torch.manual_seed(0)
    small, large, again = UNet(20, 5, 4, False), UNet(20, 5, 8, False), UNet(20, 5, 4, False)
    widen_unet(small, large)
    narrow_unet(large, again)
    assert all(torch.equal(a, b) for a, b in zip(small.state_dict().values(), again.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="cannot widen"):
        widen_unet(large, small)
    with pytest.raises(ValueError, match="cannot narrow"):
        narrow_unet(small, large)


@pytest.mark.parametrize("width", [6, 2])
def test_a_run_of_another_width_starts_from_the_given_model(data_cache: Path, tmp_path: Path,
                                                            tiny_dis_model_path: Path, width: int) -> None:
    config = tmp_path / "other-width.json"
    config.write_text(json.dumps({"width": width, "flow": "dis", "resample": "bilinear", "crop": 32, "batch": 2,
                                  "val_every": 1, "steps": 100, "lr": 0.0, "min_lr": 0.0}))
    run = _train(tmp_path / "run", config, "--init", str(tiny_dis_model_path), "--max-steps", "1")
    assert run.returncode == 0, run.stderr
    assert provenance_of(tmp_path / "run" / "best.safetensors")["init"] == tiny_dis_model_path.name
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)["model"]
    trained = UNet(20, 5, width, False)
    trained.load_state_dict({k.removeprefix("interp_net."): v for k, v in state.items()
                             if k.startswith("interp_net.")})
    init = load_model(tiny_dis_model_path).interp_net
    if width > 4:  # widened: the same frames as the init model
        x = torch.randn(1, 20, 64, 96)
        torch.testing.assert_close(trained(x), init(x), atol=1e-5, rtol=1e-4)
    else:  # narrowed: its leading channels
        expected = UNet(20, 5, width, False)
        narrow_unet(init, expected)
        assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), expected.state_dict().values(),
                                                     strict=True))


def test_flow_only_training_leaves_the_interpolation_unet_alone_and_scores_the_end_point_error(
    data_cache: Path, tmp_path: Path, tiny_model_path: Path
) -> None:
    config = tmp_path / "flow-only.json"
    config.write_text(json.dumps({"width": 4, "resample": "bilinear", "crop": 32, "batch": 2, "val_every": 2,
                                  "steps": 100, "synthetic_fraction": 1.0, "warmup": 1,
                                  "losses": {"reconstruction": 0, "census": 0, "warping": 0, "smoothness": 0,
                                             "flow": 1}}))
    out = tmp_path / "run"
    run = _train(out, config, "--init", str(tiny_model_path), "--max-steps", "2", "--threads", "1")
    assert run.returncode == 0, run.stderr
    state = torch.load(out / "state.pt", weights_only=True)["model"]
    init = load_model(tiny_model_path)
    assert all(torch.equal(state[f"interp_net.{k}"], v) for k, v in init.interp_net.state_dict().items())
    assert init.flow_net is not None
    assert not all(torch.equal(state[f"flow_net.{k}"], v) for k, v in init.flow_net.state_dict().items())
    fresh = _train(tmp_path / "fresh", config, "--max-steps", "2", "--threads", "1")
    assert fresh.returncode == 0, fresh.stderr
    silent = load_model(tmp_path / "fresh" / "last.safetensors").interp_net.conv3  # fuses as refine=False
    assert not any(bool(p.any()) for p in silent.parameters())
    # validated on the flows alone (an untrained interpolation U-Net's frames would say nothing)
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 2 and 0 < record["flow_ratio"] < 10 and "validation" not in record
    assert (out / "best.safetensors").exists()


def test_a_run_with_a_fixed_flow_unet_trains_only_the_interpolation_unet(
    data_cache: Path, tmp_path: Path, tiny_model_path: Path
) -> None:
    config = tmp_path / "interp-only.json"
    config.write_text(json.dumps({"width": 4, "resample": "bilinear", "crop": 32, "batch": 2, "val_every": 2,
                                  "steps": 100, "warmup": 1, "lr": 0.01, "train_flow_net": False}))
    out = tmp_path / "run"
    run = _train(out, config, "--init", str(tiny_model_path), "--max-steps", "2", "--threads", "1")
    assert run.returncode == 0, run.stderr
    state = torch.load(out / "state.pt", weights_only=True)["model"]
    init = load_model(tiny_model_path)
    assert init.flow_net is not None
    assert all(torch.equal(state[f"flow_net.{k}"], v) for k, v in init.flow_net.state_dict().items())
    assert not all(torch.equal(state[f"interp_net.{k}"], v) for k, v in init.interp_net.state_dict().items())
    # a fixed flow U-Net that was never trained is refused, before any step
    refused = _train(tmp_path / "fresh", config, "--max-steps", "2", "--threads", "1")
    assert refused.returncode != 0 and "give --init" in refused.stderr and "Traceback" not in refused.stderr


def test_a_fixed_flow_unet_needs_one_and_something_else_to_train() -> None:
    from vs_superslomo.train.trainer import TrainConfig

    with pytest.raises(ValueError, match="needs a flow U-Net"):
        TrainConfig.from_dict({"flow": "dis", "train_flow_net": False})
    with pytest.raises(ValueError, match="nothing to train"):
        TrainConfig.from_dict({"train_flow_net": False, "losses": {"reconstruction": 0, "census": 0, "warping": 0,
                                                                   "smoothness": 0, "flow": 1}})


def test_the_flow_only_loss_is_the_end_point_term_of_the_full_loss() -> None:
    bank = PhotoBank(_photos(), [])
    rng = np.random.default_rng(3)
    samples = [synthetic_sample(bank, rng, 64, MotionRanges(max_shift=6.0)) for _ in range(2)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    model = SuperSloMo(ModelConfig(width=4))
    i0, i1 = model.normalize(batch["i0"]), model.normalize(batch["i1"])
    f01, f10 = model.compute_flows(i0, i1)
    flow_only = LossWeights(reconstruction=0, census=0, warping=0, smoothness=0, flow=1)
    full, parts = total_loss(batch, model.synthesize(i0, i1, f01, f10, batch["t"]), f01, f10, flow_only)
    alone, alone_parts = total_loss(batch, None, f01, f10, flow_only)
    assert flow_only.flow_only and not LossWeights().flow_only
    assert float(alone.detach()) == pytest.approx(float(full.detach()))
    assert alone_parts["epe"] == parts["epe"] > 0
    with pytest.raises(ValueError, match="synthesis is needed"):
        total_loss(batch, None, f01, f10, LossWeights())


def test_every_config_file_is_a_valid_run_and_crops_fit_the_unet_scale() -> None:
    from vs_superslomo.train.trainer import TrainConfig

    for path in sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.json")):
        cfg = TrainConfig.from_dict(json.loads(path.read_text()))
        assert cfg.crop % round(32 / min(cfg.model.unet_scale, cfg.model.flow_net_scale)) == 0, path.name
    with pytest.raises(ValueError, match="multiple of 64"):
        TrainConfig.from_dict({"unet_scale": 0.5, "crop": 224})
    with pytest.raises(ValueError, match="multiple of 128"):
        TrainConfig.from_dict({"flow_net_scale": 0.25, "crop": 64})


def _rippled_scenes(count: int, locked_off: float = 0.0) -> list:
    bank = PhotoBank(_photos(), [])
    rng = np.random.default_rng(7)
    ranges = MotionRanges(max_shift=24.0, max_objects=0, brightness=0.0, locked_off=locked_off, background_ripple=0.5)
    return [random_scene(bank, rng, 96, ranges) for _ in range(count)]


def test_a_ripple_is_inverted_to_float_precision() -> None:
    ripple = random_ripple(np.random.default_rng(0), 96, 16.0)
    assert 0 < ripple.lipschitz() <= 0.45
    ys, xs = np.meshgrid(np.arange(-20.0, 120.0, 7.0), np.arange(-20.0, 120.0, 7.0), indexing="ij")
    target = np.stack((xs, ys))
    for t in (0.3, 1.0):
        y = ripple.solve(target, t)
        assert np.abs(y + t * ripple.at(y) - target).max() < 1e-6


def test_rippled_backgrounds_move_non_rigidly_and_their_flow_labels_are_exact() -> None:
    for scene in _rippled_scenes(3):
        assert scene.layers[0].ripple is not None
        frame0, frame1 = scene.render(0.0)[0], scene.render(1.0)[0]
        f01, f10 = scene.flow(0.0, 1.0), scene.flow(1.0, 0.0)
        visible = scene.visible(0.0, 1.0)
        visible[:4], visible[-4:], visible[:, :4], visible[:, -4:] = 0, 0, 0, 0
        assert visible.sum() > 2000
        warped = backward_warp(frame1[None], f01[None])[0]  # frame 1 sampled where frame 0's content went
        assert ((warped - frame0).abs().mean(0) * visible).sum() / visible.sum() < 0.01
        back = backward_warp(f10[None], f01[None])[0]  # there and back again
        assert ((f01 + back).norm(dim=0) * visible).sum() / visible.sum() < 0.01
        # not one rigid motion: the flow's spread over the frame exceeds a pixel
        assert float(f01[:, visible > 0].std(dim=1).norm()) > 0.5


def test_locked_off_scenes_keep_their_background_still_even_with_ripples() -> None:
    for scene in _rippled_scenes(2, locked_off=1.0):
        assert scene.layers[0].ripple is None
        still = scene.flow(0.0, 1.0)[:, scene.render(0.0)[1] == 0]
        assert still.abs().max() < 1e-4


def test_a_transposed_sample_keeps_exact_labels() -> None:
    bank = PhotoBank(_photos(), [])
    ranges = MotionRanges(max_shift=12.0, max_objects=0, brightness=0.0, noise=0.0, blur=0.0)
    sample = synthetic_sample(bank, np.random.default_rng(2), 64, ranges)
    for key in ("i0", "i1", "f01", "v01"):  # not square, so that a wrong axis shows
        sample[key] = sample[key][..., :48]
    flipped = transposed(sample)
    assert flipped["i0"].shape == (3, 48, 64) and flipped["f01"].shape == (2, 48, 64)
    torch.testing.assert_close(flipped["f01"][0], sample["f01"][1].T)
    for s in (sample, flipped):
        visible = -torch.nn.functional.max_pool2d(-s["v01"][None, None], 5, 1, 2)[0, 0]
        warped = backward_warp(s["i1"][None], s["f01"][None])[0]
        assert ((warped - s["i0"]).abs().mean(0) * visible).sum() / visible.sum() < 0.02
    assert transposed(flipped)["f01"].equal(sample["f01"])


def test_the_huber_end_point_error_is_quadratic_below_delta_and_linear_above() -> None:
    label = torch.zeros(1, 2, 1, 3)
    flow = torch.tensor([[[[0.0, 0.3, 3.0]], [[0.0, 0.4, 4.0]]]])  # distances 0, 0.5, 5
    torch.testing.assert_close(end_point_error(flow, label), torch.tensor([[[0.0, 0.5, 5.0]]]))
    torch.testing.assert_close(end_point_error(flow, label, huber=1.0), torch.tensor([[[0.0, 0.125, 4.5]]]))
    flow.requires_grad_(True)
    end_point_error(flow, label, huber=1.0).sum().backward()
    assert flow.grad is not None and torch.isfinite(flow.grad).all()  # also at zero distance


def test_the_flow_ratio_is_one_for_zero_flow_and_zero_for_the_true_flow() -> None:
    label = torch.randn(2, 2, 8, 8)
    valid = (torch.rand(2, 8, 8) > 0.3).float()
    assert end_point_ratio(torch.zeros_like(label), label, valid) == pytest.approx(1.0)
    assert end_point_ratio(label, label, valid) == 0.0
    assert end_point_ratio(2 * label, label, valid) == pytest.approx(1.0)
    wrong_where_invalid = label + 5 * (1 - valid)[:, None]
    assert end_point_ratio(wrong_where_invalid, label, valid) == pytest.approx(0.0, abs=1e-6)


def test_a_dis_model_has_a_flow_ratio_well_below_one_on_a_rippled_scene(tiny_dis_model_path: Path) -> None:
    items = [FlowItem(s.render(0.0)[0], s.render(1.0)[0], s.flow(0.0, 1.0), s.visible(0.0, 1.0))
             for s in _rippled_scenes(2)]
    assert flow_ratio(load_model(tiny_dis_model_path), items) < 0.5
    zero_flow = SuperSloMo(ModelConfig(width=2))  # an untrained flow U-Net's output is close to zero
    assert 0.9 < flow_ratio(zero_flow, items) < 1.5


def test_the_flow_labels_of_synthetic_validation_belong_to_its_scenes(data_cache: Path) -> None:
    frames = synthetic_validation(2, count=2, size=64)
    flows = synthetic_flow_validation(2, count=2, size=64)
    for item, flow in zip(frames, flows, strict=True):
        assert torch.equal(item.frame0, flow.frame0) and torch.equal(item.frame1, flow.frame1)
        assert flow.flow.shape == (2, 64, 64) and flow.valid.shape == (64, 64) and flow.valid.sum() > 0


def test_the_flow_signal_settings_default_by_flow_source() -> None:
    network = TrainConfig()
    assert network.model.flow == "network" and network.background_ripple == 0.25 and network.adam_eps == 1e-12
    assert network.transpose == 0.5
    dis = TrainConfig.from_dict({"flow": "dis"})
    assert dis.background_ripple == 0.0 and dis.adam_eps == 1e-8  # as the shipped DIS model was trained
    assert dis.transpose == 0.0 and dis.flow_head_lr == 1.0
    assert TrainConfig.from_dict({"flow": "dis", "background_ripple": 0.5}).background_ripple == 0.5
    assert TrainConfig.from_dict(network.to_dict()) == network
    assert network.losses.flow_huber == 1.0 and network.locked_off == 0.25
    with pytest.raises(ValueError, match="locked_off"):
        TrainConfig.from_dict({"locked_off": 1.5})


def test_set_changes_one_loss_weight_and_refuses_unknown_ones() -> None:
    cfg = TrainConfig().with_setting("losses.flow", 0.1)
    assert cfg.losses.flow == 0.1 and cfg.losses.warping == LossWeights().warping
    for key in ("losses.nope", "losses", "nope"):
        with pytest.raises(ValueError, match="unknown config field"):
            TrainConfig().with_setting(key, 1.0)


def test_validation_windows_carry_the_inputs_one_window_around_them() -> None:
    # Frame k is filled with k: windows of factor 4 start at frames 0, 8 and 15 of 20.
    frames = np.arange(20, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    first, middle, last = windows("k", frames, 4, 3)

    def index(x: torch.Tensor | None) -> int | None:
        return None if x is None else round(float(x[0, 0, 0]) * 255)

    assert [index(w.before) for w in (first, middle, last)] == [None, 4, 11]
    assert [index(w.frame0) for w in (first, middle, last)] == [0, 8, 15]
    assert [index(w.after) for w in (first, middle, last)] == [8, 16, None]
    assert [index(w.after) for w in windows("k", frames, 4, 3, span=(0, 13))] == [8, 12, None]  # 16 is past it
