"""Very large motion at factor 8, and the fail-safe toward blending (issue 19), with the shipped model.

The motion oracle: a textured pan rendered at any time s (sub-pixel exact, cv2.warpAffine); phase
correlation between an output frame and the render at its timestep says how far the output's content is
from where it should be. Blending two frames 40-120 px apart leaves two half-copies, which the oracle puts
tens of pixels away, so the oracle can fail.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import vapoursynth as vs
from skimage import data as skdata

from vs_superslomo import interpolate, load_model
from vs_superslomo.classical_flow import dis_flows
from vs_superslomo.engine import Interpolator
from vs_superslomo.fallback import fallback_map
from vs_superslomo.filter import FALLBACK_PROP
from vs_superslomo.large_motion import global_shift

core = vs.core
TIMESTEPS = [k / 8 for k in range(1, 8)]


def _texture(seed: int, height: int = 900, width: int = 1400) -> np.ndarray:
    """Multi-scale random texture, RGB float32 in [0, 1]: detail at every scale, nowhere flat."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for scale in (3, 6, 12, 24, 48):
        noise = rng.random((height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        img += cv2.resize(noise, (width + 2 * scale, height + 2 * scale), interpolation=cv2.INTER_CUBIC)[
            scale : scale + height, scale : scale + width]
    img -= img.min()
    return img / img.max()


TEXTURE = _texture(19)


def _render(width: int, height: int, dx: float, dy: float, texture: np.ndarray = TEXTURE) -> np.ndarray:
    """The texture's window with its content moved by (dx, dy) from the start position."""
    move = np.float32([[1, 0, dx - 500], [0, 1, dy - 300]])
    return cv2.warpAffine(texture, move, (width, height), flags=cv2.INTER_CUBIC)


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


def _oracle_error(frame: np.ndarray, truth: np.ndarray) -> float:
    """How many pixels the frame's content is away from the truth's (phase correlation of the grey frames)."""
    h, w = truth.shape[:2]
    grey = [cv2.cvtColor(np.ascontiguousarray(x, np.float32), cv2.COLOR_RGB2GRAY) for x in (truth, frame)]
    (sx, sy), _ = cv2.phaseCorrelate(grey[0], grey[1], window=cv2.createHanningWindow((w, h), cv2.CV_32F))
    return float(np.hypot(sx, sy))


@pytest.fixture(scope="module")
def engine() -> Interpolator:
    return Interpolator(load_model(), device="cpu")


@pytest.mark.parametrize(("width", "height", "dx", "dy"), [(214, 160, 120, 40), (214, 160, -60, 20),
                                                           (640, 360, 100, -30)])
def test_a_fast_pan_lands_where_it_should_at_factor_8(engine: Interpolator, width: int, height: int, dx: int,
                                                      dy: int) -> None:
    first, last = _render(width, height, 0, 0), _render(width, height, dx, dy)
    rendered = engine.render(_tensor(first), _tensor(last), TIMESTEPS)
    for t, frame in zip(TIMESTEPS, rendered.frames, strict=True):
        truth = _render(width, height, t * dx, t * dy)
        assert _oracle_error(frame.permute(1, 2, 0).numpy(), truth) <= 2.0, t
    middle = _render(width, height, dx / 2, dy / 2)
    assert _oracle_error(0.5 * first + 0.5 * last, middle) > 10  # blending's two half-copies fail the oracle
    assert rendered.fallback < 0.2


def test_plain_dis_finds_less_than_the_seeded_estimate() -> None:
    # Why the large-motion path exists: 120 px on a 214x160 frame is beyond DIS's coarsest level.
    first, last = _render(214, 160, 0, 0), _render(214, 160, 120, 40)
    grey = [cv2.cvtColor((x * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY) for x in (first, last)]
    dx, dy, match = global_shift(*grey)
    assert abs(dx - 120) < 3 and abs(dy - 40) < 3 and match < 0.5  # a seed: DIS refines it
    plain = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(
        grey[0], grey[1], np.zeros((160, 214, 2), np.float32))
    assert abs(float(np.median(plain[40:120, 20:80, 0])) - 120) > 20
    f01, _ = dis_flows(_tensor(first), _tensor(last))
    assert abs(float(f01[0, 0, 40:120, 20:80].median()) - 120) < 1


def test_small_motion_keeps_plain_dis_bit_for_bit_and_never_falls_back(engine: Interpolator) -> None:
    first, last = _render(214, 160, 0, 0), _render(214, 160, 6, -3)
    grey = [cv2.cvtColor((x * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY) for x in (first, last)]
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    plain = dis.calc(grey[0], grey[1], np.zeros((160, 214, 2), np.float32))
    f01, f10 = dis_flows(_tensor(first), _tensor(last))
    assert np.array_equal(f01[0].permute(1, 2, 0).numpy(), plain)
    assert float(fallback_map(f01, f10).abs().max()) == 0.0
    without = Interpolator(load_model(), device="cpu", fallback=False)
    a, b = _tensor(first), _tensor(last)
    assert torch.equal(engine.interpolate_tensors(a, b, [0.5]), without.interpolate_tensors(a, b, [0.5]))


def test_inconsistent_flows_fall_back_only_where_the_halfway_warps_disagree() -> None:
    # Content moves 12 px left; F0->1 also says 12 px down, so the flows never return home. Along vertical
    # stripes the vertical part is unobservable (the aperture problem): both frames carried halfway agree and
    # the output is right, so nothing falls back. On texture the same flows are garbage, and it falls back.
    f01 = torch.tensor([-12.0, 12.0]).view(1, 2, 1, 1).expand(1, 2, 160, 214)
    f10 = torch.tensor([12.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 160, 214)
    stripes = np.repeat(TEXTURE[300:301, 500:714], 160, axis=0)
    moved = np.repeat(TEXTURE[300:301, 512:726], 160, axis=0)
    weight = fallback_map(f01, f10, _tensor(stripes), _tensor(moved))
    assert float(weight[..., 16:].max()) < 0.05  # (the 12 px that leave the frame have no match)
    textured = [_tensor(_render(214, 160, 0, 0)), _tensor(_render(214, 160, -12, 0))]
    assert float(fallback_map(f01, f10, *textured).min()) > 0.95
    assert float(fallback_map(f01, f10).min()) > 0.95  # without the frames the flows alone decide
    # Only differences of the frames count: the engine passes its normalised frames (RGB minus a mean).
    shifted = fallback_map(f01, f10, _tensor(stripes) - 0.43, _tensor(moved) - 0.43)
    assert torch.allclose(shifted, weight, atol=1e-5) and float(weight.max()) > 0.5


def _two_frame_clip(frames: list[np.ndarray]) -> vs.VideoNode:
    h, w = frames[0].shape[:2]
    base = core.std.BlankClip(width=w, height=h, format=vs.RGBS, length=len(frames), fpsnum=12, fpsden=1)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n][..., p])
        return out

    return core.std.ModifyFrame(base, base, fill)


def _planes(frame: vs.VideoFrame) -> np.ndarray:
    return np.stack([np.asarray(frame[p]) for p in range(3)], axis=-1)


def _photo(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (214, 160), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _missed_cut(first: np.ndarray, last: np.ndarray) -> None:
    """Through the filter with sc=False: every new frame as close to the nearer frame as blending's, all fell back."""
    out = interpolate(_two_frame_clip([first, last]), factor=8, sc=False)
    for n in range(1, 8):
        frame = out.get_frame(n)
        t = n / 8
        nearer = first if t < 0.5 else last
        blend = (1 - t) * first + t * last
        ours, blend_error = _planes(frame), float(np.mean((blend - nearer) ** 2))
        assert float(np.mean((ours - nearer) ** 2)) <= 1.02 * blend_error + 1e-5, n
        assert frame.props[FALLBACK_PROP] > 0.9


def test_a_missed_cut_falls_back_to_blending_and_says_so() -> None:
    # Two unrelated photographs and sc=False: the detector cannot save this pair, the fail-safe must.
    astronaut = cv2.resize(skdata.astronaut(), (1024, 1024)).astype(np.float32)[400:560, 400:614] / 255
    _missed_cut(astronaut, _photo(skdata.coffee()))
    pan = interpolate(_two_frame_clip([_render(214, 160, 0, 0), _render(214, 160, 60, 20)]), factor=8, sc=False)
    assert 0.0 <= pan.get_frame(4).props[FALLBACK_PROP] < 0.2
    assert FALLBACK_PROP not in pan.get_frame(0).props  # source frames are passed through untouched


def test_a_missed_cut_between_whole_photographs_falls_back() -> None:
    _missed_cut(_photo(skdata.astronaut()), _photo(skdata.coffee()))


@pytest.mark.parametrize("quadratic", [True, False])
def test_an_accelerating_pan_lands_on_its_parabola_through_the_frames_around_the_pair(quadratic: bool) -> None:
    # Content at x(k) = 10 k + 8 k^2 px in source frames k = -1, 0, 1, 2 (a camera speeding up): halfway between
    # frames 0 and 1 it is at 7 px, where a straight path puts it at 9. The filter brings in frames -1 and 2.
    positions = [-2.0, 0.0, 18.0, 52.0]
    clip = _two_frame_clip([_render(640, 360, x, 0) for x in positions])
    out = interpolate(clip, factor=2, quadratic=quadratic)
    middle = _planes(out.get_frame(3))  # between source frames 1 and 2
    if quadratic:
        assert _oracle_error(middle, _render(640, 360, 7, 0)) <= 0.5
    else:
        assert _oracle_error(middle, _render(640, 360, 9, 0)) <= 0.5


def test_a_still_pair_stays_still_when_the_camera_starts_moving_after_it() -> None:
    # Source frames at x = 0, 0, 0, 80 px: between frames 1 and 2 nothing moves, whatever frame 3 does. A
    # parabola through the four positions would bow the still pair out along the coming pan (~1 px at t = 1/2).
    clip = _two_frame_clip([_render(640, 360, x, 0) for x in (0.0, 0.0, 0.0, 80.0)])
    middle = _planes(interpolate(clip, factor=2).get_frame(3))
    assert _oracle_error(middle, _render(640, 360, 0, 0)) <= 0.25


def test_quadratic_motion_never_reaches_across_a_marked_cut() -> None:
    # The same pan before and after a cut the source marks (frame 1's _SceneChangePrev): the pair after the
    # cut is rendered exactly as in a clip that starts at frame 1, not bent through frame 0; unmarked, it is.
    frames = [_render(640, 360, x, 0) for x in (-30.0, 0.0, 18.0, 52.0)]
    clip = _two_frame_clip(frames)
    marked = clip[0] + core.std.SetFrameProps(clip[1], _SceneChangePrev=1) + clip[2:]
    alone = _planes(interpolate(_two_frame_clip(frames[1:]), factor=2).get_frame(1))
    assert np.array_equal(_planes(interpolate(marked, factor=2).get_frame(3)), alone)
    assert not np.array_equal(_planes(interpolate(clip, factor=2).get_frame(3)), alone)
