"""Model files: our safetensors format, the original Super-SloMo .ckpt import, and model lookup.

Loading never unpickles arbitrary objects: safetensors holds only tensors and string metadata, and
the original checkpoint is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor

from .network import ModelConfig, SuperSloMo

FORMAT_NAME = "vs-superslomo"
FORMAT_VERSION = "1"
DEFAULT_MODEL_NAME = "superslomo.safetensors"
# Users can point every entry point at another default model with this variable.
MODEL_ENV_VAR = "VS_SUPERSLOMO_MODEL"
# The paper's model has width 32 (39.6 M parameters); 128 already needs 2.5 GB of weights.
MAX_WIDTH = 128
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors' names


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or does not describe a valid model."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"model file {os.fspath(path)!r}: {problem}")
        self.path = os.fspath(path)
        self.problem = problem


def save_model(model: SuperSloMo, path: str | os.PathLike[str], provenance: dict[str, Any] | None = None) -> None:
    """Write the model's weights, config and provenance (training data, steps, scores) as safetensors."""
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_json(),
        "provenance": json.dumps(provenance or {}, sort_keys=True),
    }
    tmp = Path(os.fspath(path) + ".tmp")
    # Written by us rather than by safetensors' save_file, which creates files readable by their owner only:
    # a model file gets the user's umask like any other output.
    with open(tmp, "wb") as f:
        f.write(save(tensors, metadata=metadata))
    os.replace(tmp, path)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors model file."""
    from safetensors import safe_open

    _check_file(path)
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise ModelFileError(path, f"not a readable safetensors file ({e})") from None


def provenance_of(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Training data, steps and validation scores recorded in a model file."""
    return dict(json.loads(read_metadata(path).get("provenance", "{}")))


def _check_file(path: str | os.PathLike[str]) -> None:
    p = Path(path)
    if not p.exists():
        raise ModelFileError(path, "no such file")
    if not p.is_file():
        raise ModelFileError(path, "not a regular file")
    if p.stat().st_size == 0:
        raise ModelFileError(path, "file is empty")


def _check_config(path: str | os.PathLike[str], config: ModelConfig) -> None:
    width = config.width
    if isinstance(width, bool) or not isinstance(width, int):
        raise ModelFileError(path, f"invalid config in metadata (width must be an integer, got {width!r})")
    if width > MAX_WIDTH:
        raise ModelFileError(path, f"invalid config in metadata (width {width} is above the largest supported, "
                                   f"{MAX_WIDTH})")


def _expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state dict's tensor shapes for ``config``, without allocating it (meta device)."""
    with torch.device("meta"):
        model = SuperSloMo(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _check_layout(path: str | os.PathLike[str], expected: dict[str, tuple[int, ...]],
                  found: dict[str, tuple[int, ...]]) -> None:
    """Names and shapes of the file's tensors against the config's, before anything is allocated."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise ModelFileError(
            path, f"weights do not match the config (missing {missing[:4]}, unexpected {extra[:4]})"
        )
    for key, shape in expected.items():
        if found[key] != shape:
            raise ModelFileError(path, f"tensor {key!r} has shape {found[key]}, the config expects {shape}")


def _check_values(path: str | os.PathLike[str], state: dict[str, Tensor]) -> None:
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise ModelFileError(path, f"tensor {key!r} has type {tensor.dtype}; weights must be floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(path, f"tensor {key!r} has non-finite values (NaN or infinity)")


def _build(path: str | os.PathLike[str], config: ModelConfig, state: dict[str, Tensor]) -> SuperSloMo:
    _check_config(path, config)
    _check_layout(path, _expected_shapes(config), {k: tuple(v.shape) for k, v in state.items()})
    _check_values(path, state)
    model = SuperSloMo(config)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return model.eval()


def _check_header(path: str | os.PathLike[str], config: ModelConfig) -> None:
    """Refuse a file whose tensors cannot be the config's before reading them (the header is enough)."""
    from safetensors import safe_open

    _check_config(path, config)
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            slices = {key: f.get_slice(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
            layout = {key: tuple(s.get_shape()) for key, s in slices.items()}
            dtypes = {key: s.get_dtype() for key, s in slices.items()}
    except (SafetensorError, OSError) as e:
        raise ModelFileError(path, f"cannot read tensors ({e})") from None
    _check_layout(path, _expected_shapes(config), layout)
    for key, dtype in dtypes.items():
        if dtype not in FLOAT_DTYPES:
            raise ModelFileError(path, f"tensor {key!r} has type {dtype}; weights must be floating point")


def load_safetensors(path: str | os.PathLike[str]) -> SuperSloMo:
    """Load a model written by :func:`save_model`."""
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(path, f"not a {FORMAT_NAME} model (metadata format={metadata.get('format')!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(path, f"unsupported format version {metadata.get('format_version')!r}")
    try:
        config = ModelConfig.from_json(metadata["config"])
    except (KeyError, ValueError, TypeError) as e:
        raise ModelFileError(path, f"invalid config in metadata ({e})") from None
    _check_header(path, config)
    try:
        state = load_file(os.fspath(path))
    except (SafetensorError, OSError) as e:
        raise ModelFileError(path, f"cannot read tensors ({e})") from None
    return _build(path, config, state)


def load_original_checkpoint(path: str | os.PathLike[str]) -> SuperSloMo:
    """Import the public avinashpaliwal/Super-SloMo ``SuperSloMo.ckpt`` (weights only, strictly)."""
    _check_file(path)
    try:
        # The original trainer stores a datetime next to the weights; nothing else is allowed.
        with torch.serialization.safe_globals([datetime.datetime]):
            data = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for hostile or corrupt pickles
        raise ModelFileError(path, f"not a loadable weights-only checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or "state_dictFC" not in data or "state_dictAT" not in data:
        raise ModelFileError(path, "not an original Super-SloMo checkpoint (needs state_dictFC and state_dictAT)")
    state: dict[str, Tensor] = {}
    for prefix, key in (("flow_net.", "state_dictFC"), ("interp_net.", "state_dictAT")):
        part = data[key]
        if not isinstance(part, dict):
            raise ModelFileError(path, f"{key} is not a state dict")
        for name, tensor in part.items():
            if not isinstance(tensor, Tensor):
                raise ModelFileError(path, f"{key}[{name!r}] is not a tensor")
            state[prefix + name] = tensor
    return _build(path, ModelConfig.original(), state)


def _shipped_dir() -> Path:
    try:
        return Path(str(resources.files("vs_superslomo.models")))
    except ModuleNotFoundError:  # running from a source checkout that is not installed
        return Path(__file__).resolve().parent.parent / "models"


def shipped_models() -> list[str]:
    """Names of the model files shipped with the package, e.g. ``"two-network"``."""
    return sorted(p.stem for p in _shipped_dir().glob("*.safetensors"))


def default_model_path() -> Path:
    """Where the shipped default model lives (or the file named by VS_SUPERSLOMO_MODEL)."""
    override = os.environ.get(MODEL_ENV_VAR)
    return Path(override) if override else _shipped_dir() / DEFAULT_MODEL_NAME


def model_path(model: str | os.PathLike[str] | None) -> Path:
    """The file a model argument means: the default for None, a shipped model for its bare name (``"two-network"``,
    unless a file of that name is in the working directory), else the path as given."""
    if model is None:
        return default_model_path()
    path = Path(os.fsdecode(model))
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    shipped = _shipped_dir() / f"{path.name}.safetensors"
    return shipped if shipped.is_file() else path


def load_model(path: str | os.PathLike[str] | None = None) -> SuperSloMo:
    """Load a model: the shipped default, a shipped model by name, a ``.safetensors`` file, or an original
    ``.ckpt``."""
    file = model_path(path)
    if path is None and not file.exists():
        raise ModelFileError(file, "no default model is installed; pass a model file (ours or an original "
                                   "SuperSloMo.ckpt)")
    if file.suffix.lower() in (".ckpt", ".pth", ".pt"):
        return load_original_checkpoint(file)
    return load_safetensors(file)


@functools.lru_cache(maxsize=2)
def _cached_model(path: str, mtime_ns: int) -> SuperSloMo:
    return load_model(path)


def resolve_model(model: str | os.PathLike[str] | SuperSloMo | None) -> SuperSloMo:
    """A loaded model as given, or the model in a file (``model_path``), loaded once per file version: scripts
    that create many filters (or reload in an editor) share it."""
    if isinstance(model, SuperSloMo):
        return model
    path = model_path(model)
    if model is None and not path.exists():
        return load_model()  # raises the "no default model" error
    if not path.exists():
        raise ModelFileError(path, f"no such file (models shipped by name: {', '.join(shipped_models())})")
    return _cached_model(str(path.resolve()), path.stat().st_mtime_ns)
