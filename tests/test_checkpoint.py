"""Model files: our safetensors format, the original SuperSloMo.ckpt import, and bad files."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import make_model
from torch import nn

from vs_superslomo import Interpolator, ModelConfig, ModelFileError, SuperSloMo, load_model, save_model
from vs_superslomo.checkpoint import provenance_of


# --- A reference port of the original avinashpaliwal/Super-SloMo model, written independently. ---
class _RefDown(nn.Module):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, k, stride=1, padding=int((k - 1) / 2))
        self.conv2 = nn.Conv2d(cout, cout, k, stride=1, padding=int((k - 1) / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2)
        x = F.leaky_relu(self.conv1(x), negative_slope=0.1)
        return F.leaky_relu(self.conv2(x), negative_slope=0.1)


class _RefUp(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(2 * cout, cout, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, skp: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear")
        x = F.leaky_relu(self.conv1(x), negative_slope=0.1)
        return F.leaky_relu(self.conv2(torch.cat((x, skp), 1)), negative_slope=0.1)


class _RefUNet(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 32, 7, stride=1, padding=3)
        self.conv2 = nn.Conv2d(32, 32, 7, stride=1, padding=3)
        self.down1, self.down2, self.down3 = _RefDown(32, 64, 5), _RefDown(64, 128, 3), _RefDown(128, 256, 3)
        self.down4, self.down5 = _RefDown(256, 512, 3), _RefDown(512, 512, 3)
        self.up1, self.up2, self.up3 = _RefUp(512, 512), _RefUp(512, 256), _RefUp(256, 128)
        self.up4, self.up5 = _RefUp(128, 64), _RefUp(64, 32)
        self.conv3 = nn.Conv2d(32, cout, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(x), negative_slope=0.1)
        s1 = F.leaky_relu(self.conv2(x), negative_slope=0.1)
        s2 = self.down1(s1)
        s3 = self.down2(s2)
        s4 = self.down3(s3)
        s5 = self.down4(s4)
        x = self.down5(s5)
        x = self.up5(self.up4(self.up3(self.up2(self.up1(x, s5), s4), s3), s2), s1)
        return F.leaky_relu(self.conv3(x), negative_slope=0.1)


def _ref_backwarp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    _, _, h, w = img.shape
    gx, gy = torch.meshgrid(torch.arange(w).float(), torch.arange(h).float(), indexing="xy")
    x = 2 * ((gx + flow[:, 0]) / w - 0.5)
    y = 2 * ((gy + flow[:, 1]) / h - 0.5)
    return F.grid_sample(img, torch.stack((x, y), dim=3), align_corners=True)  # the old PyTorch default


def _ref_interpolate(fc: _RefUNet, at: _RefUNet, a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    mean = torch.tensor([0.429, 0.431, 0.397]).view(1, 3, 1, 1)
    i0, i1 = a - mean, b - mean
    flow = fc(torch.cat((i0, i1), 1))
    f01, f10 = flow[:, :2], flow[:, 2:]
    temp = -t * (1 - t)
    ft0 = temp * f01 + t * t * f10
    ft1 = (1 - t) * (1 - t) * f01 + temp * f10
    g0, g1 = _ref_backwarp(i0, ft0), _ref_backwarp(i1, ft1)
    out = at(torch.cat((i0, i1, f01, f10, ft1, ft0, g1, g0), 1))
    ft0f, ft1f = out[:, :2] + ft0, out[:, 2:4] + ft1
    v0 = torch.sigmoid(out[:, 4:5])
    v1 = 1 - v0
    g0f, g1f = _ref_backwarp(i0, ft0f), _ref_backwarp(i1, ft1f)
    return ((1 - t) * v0 * g0f + t * v1 * g1f) / ((1 - t) * v0 + t * v1) + mean


@pytest.fixture(scope="module")
def original_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, _RefUNet, _RefUNet]:
    torch.manual_seed(3)
    fc, at = _RefUNet(6, 4).eval(), _RefUNet(20, 5).eval()
    # Random weights are scaled down so that flows stay in a realistic range.
    with torch.no_grad():
        for p in list(fc.parameters()) + list(at.parameters()):
            p.mul_(0.5)
    path = tmp_path_factory.mktemp("orig") / "SuperSloMo.ckpt"
    torch.save({
        "Detail": "End to end Super SloMo.", "epoch": 199, "timestamp": datetime.datetime(2018, 10, 1, 12, 0),
        "trainBatchSz": 6, "validationBatchSz": 10, "learningRate": 1e-5, "loss": [[0.1]], "valLoss": [[0.2]],
        "valPSNR": [[30.5]], "state_dictFC": fc.state_dict(), "state_dictAT": at.state_dict(),
    }, path)
    return path, fc, at


def test_original_checkpoint_imports_strictly_and_reproduces_the_original_model(original_ckpt) -> None:
    path, fc, at = original_ckpt
    model = load_model(path)
    assert model.config == ModelConfig.original()
    ours = model.state_dict()
    expected = {f"flow_net.{k}": v for k, v in fc.state_dict().items()}
    expected |= {f"interp_net.{k}": v for k, v in at.state_dict().items()}
    assert set(ours) == set(expected)  # every tensor in its layer, nothing left over
    for k, v in expected.items():
        assert torch.equal(ours[k], v)
    torch.manual_seed(1)
    a, b = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        ref = _ref_interpolate(fc, at, a, b, 0.25)
        got = model(a, b, torch.tensor([0.25]))
    assert torch.allclose(got, ref, atol=1e-5)


def test_convert_command_gives_identical_frames(original_ckpt, tmp_path: Path) -> None:
    path, _, _ = original_ckpt
    out = tmp_path / "converted.safetensors"
    res = subprocess.run([sys.executable, "-m", "vs_superslomo.convert", str(path), str(out)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    original, converted = load_model(path), load_model(out)
    assert converted.config == original.config
    img0, img1 = torch.rand(50, 70, 3), torch.rand(50, 70, 3)
    frames_a = Interpolator(original).interpolate(img0, img1, [0.3, 0.5])
    frames_b = Interpolator(converted).interpolate(img0, img1, [0.3, 0.5])
    for x, y in zip(frames_a, frames_b, strict=True):
        assert torch.equal(x, y)
    assert provenance_of(out)["converted_from"] == "SuperSloMo.ckpt"


def test_safetensors_round_trip_keeps_config_and_provenance(tmp_path: Path) -> None:
    model = make_model(width=4, output_activation=True)
    path = tmp_path / "m.safetensors"
    save_model(model, path, {"steps": 12, "validation": {"psnr": 30.1}})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert provenance_of(path) == {"steps": 12, "validation": {"psnr": 30.1}}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


@pytest.mark.parametrize("form", [{"flow_norm": True},
                                  {"flow_norm": True, "flow_net_scale": 0.25, "flow_correlation": 2},
                                  {"flow_norm": True, "flow_net_scale": 0.25, "flow_correlation": 2,
                                   "flow_correlation_scale": 1.0, "flow_peak": True, "flow_residual": True}])
def test_a_normalised_flow_network_round_trips_and_computes_the_same_flows(tmp_path: Path,
                                                                          form: dict[str, object]) -> None:
    model = make_model(width=4, **form).eval()
    path = tmp_path / "normed.safetensors"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.flow_net is not None and loaded.flow_net.norm
    i0, i1 = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        pairs = zip(model.compute_flows(i0, i1), loaded.compute_flows(i0, i1), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)


def _corrupt(tmp_path: Path, kind: str) -> Path:
    good = tmp_path / "good.safetensors"
    save_model(make_model(width=4), good)
    bad = tmp_path / f"{kind}.safetensors"
    data = good.read_bytes()
    if kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "garbage":
        bad.write_bytes(os.urandom(4096))
    elif kind == "wrong_shapes":
        from safetensors.torch import load_file, save_file

        tensors = load_file(good)
        tensors["flow_net.conv1.weight"] = torch.zeros(3, 3)
        meta = {"format": "vs-superslomo", "format_version": "1", "config": ModelConfig(width=4).to_json()}
        save_file(tensors, bad, metadata=meta)
    elif kind == "wrong_config":
        from safetensors.torch import load_file, save_file

        meta = {"format": "vs-superslomo", "format_version": "1", "config": ModelConfig(width=8).to_json()}
        save_file(load_file(good), bad, metadata=meta)
    elif kind == "bad_config_json":
        from safetensors.torch import load_file, save_file

        meta = {"format": "vs-superslomo", "format_version": "1", "config": json.dumps({"width": -3})}
        save_file(load_file(good), bad, metadata=meta)
    elif kind == "not_ours":
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(2)}, bad)
    return bad


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("truncated", "not a readable safetensors"), ("empty", "empty"), ("garbage", "not a readable safetensors"),
     ("wrong_shapes", "has shape"), ("wrong_config", "has shape"), ("bad_config_json", "invalid config"),
     ("not_ours", "not a vs-superslomo model")],
)
def test_bad_model_files_are_refused_with_name_and_reason(tmp_path: Path, kind: str, reason: str) -> None:
    path = _corrupt(tmp_path, kind)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert reason in str(info.value)


def test_missing_file_is_named() -> None:
    with pytest.raises(ModelFileError, match="no such file"):
        load_model("/nonexistent/model.safetensors")


def test_pickle_payload_in_a_ckpt_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dictFC": Payload(), "state_dictAT": {}}, path)
    with pytest.raises(ModelFileError, match="weights-only"):
        load_model(path)
    assert not marker.exists()


def test_no_default_model_message_or_default_loads() -> None:
    from vs_superslomo.checkpoint import default_model_path

    if default_model_path().exists():
        assert isinstance(load_model(), SuperSloMo)
    else:
        with pytest.raises(ModelFileError, match="no default model is installed"):
            load_model()


def test_saved_model_files_get_the_users_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        save_model(make_model(width=4), tmp_path / "shared.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.safetensors").stat().st_mode & 0o777 == 0o644


def test_a_shipped_model_is_named_by_its_file_name_unless_the_working_directory_has_that_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vs_superslomo.checkpoint import model_path, resolve_model, shipped_models

    monkeypatch.delenv("VS_SUPERSLOMO_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert "superslomo" in shipped_models()
    assert model_path("superslomo") == model_path(None) and model_path(None).is_file()
    assert load_model("superslomo").config == load_model().config
    (tmp_path / "superslomo").write_bytes(b"")  # the user's own file of that name wins
    assert model_path("superslomo") == Path("superslomo")
    with pytest.raises(ModelFileError, match="file is empty"):
        load_model("superslomo")
    assert model_path("superslomo.safetensors") == Path("superslomo.safetensors")  # a file name is a path
    with pytest.raises(ModelFileError, match=r"no such file \(models shipped by name: .*superslomo"):
        resolve_model("no-such-model")
