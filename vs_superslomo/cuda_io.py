"""VapourSynth planes to and from CUDA through CuPy: pinned staging memory, asynchronous copies on a
stream, and DLPack hand-over to torch without a device copy.

This is the only module that knows CuPy. Our CI has no GPU: the transfers are not exercised by our
tests (``make gpu-check`` runs them on a CUDA machine); the CuPy/torch match below is.

CuPy and torch must be built for the same CUDA major version (one process loads one CUDA runtime):
PyPI's torch is a CUDA 13 build today, so the ``cuda`` extra installs ``cupy-cuda13x``.
"""

from __future__ import annotations

import importlib.metadata
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def cupy_package(cuda_major: int) -> str:
    """The PyPI name of the CuPy wheel built for a CUDA major version."""
    return f"cupy-cuda{cuda_major}x"


def installed_cupy() -> dict[str, str]:
    """CuPy distributions installed in this environment: name -> version (from pip's metadata, no import)."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name == "cupy" or re.fullmatch(r"cupy-cuda\d+x?", name):
            found[name] = dist.version
    return found


def cupy_problem(torch_cuda: str | None, cupy: Mapping[str, str]) -> str | None:
    """What is wrong with CuPy next to a torch built for CUDA ``torch_cuda`` (None: nothing we can tell).

    ``cupy`` maps installed CuPy distribution names to versions (see :func:`installed_cupy`).
    """
    if torch_cuda is None:
        return (f"this torch ({torch.__version__}) is a CPU-only build: CUDA needs a CUDA build of torch "
                "(pip install torch) and the CuPy for its CUDA version")
    major = int(torch_cuda.split(".")[0])
    want = cupy_package(major)
    if not cupy:
        return (f"CUDA transfers need CuPy for CUDA {major} (torch {torch.__version__} is built for CUDA "
                f"{torch_cuda}): pip install {want}   (or: pip install 'vs-superslomo[cuda]')")
    if len(cupy) > 1:
        return (f"several CuPy packages are installed ({', '.join(sorted(cupy))}); they overwrite each other: "
                f"pip uninstall {' '.join(sorted(cupy))} && pip install {want}")
    name = next(iter(cupy))
    built_for = re.fullmatch(r"cupy-cuda(\d+)(x?)", name)
    if built_for is None:  # a source build ("cupy"): its CUDA version is only known at run time
        return None
    digits, any_minor = built_for.groups()  # cupy-cuda13x: CUDA 13.*; the old cupy-cuda102: CUDA 10.2
    cupy_major = int(digits if any_minor else digits[:-1])
    if cupy_major != major:
        return (f"{name} is built for CUDA {cupy_major}, but torch {torch.__version__} is built for CUDA "
                f"{torch_cuda}; the two cannot share one CUDA runtime: pip uninstall {name} && pip install {want}")
    return None


def check_cupy(torch_cuda: str | None = None) -> Any:
    """Import CuPy after checking that it matches torch's CUDA major; returns the module.

    Raises ImportError with the package to install when CuPy is missing or built for another CUDA
    major than torch (``torch.version.cuda`` unless ``torch_cuda`` is given).
    """
    torch_cuda = torch.version.cuda if torch_cuda is None else torch_cuda
    problem = cupy_problem(torch_cuda, installed_cupy())
    if problem:
        raise ImportError(problem)
    try:
        import cupy
    except ImportError as e:
        major = int(str(torch_cuda).split(".")[0])
        raise ImportError(f"CuPy does not import ({e}); for torch's CUDA {torch_cuda}: "
                          f"pip install --force-reinstall {cupy_package(major)}") from e
    try:
        runtime = int(cupy.cuda.runtime.runtimeGetVersion())
    except Exception:  # no driver or no runtime library: the transfers themselves will say so
        return cupy
    if torch_cuda is not None and runtime // 1000 != int(torch_cuda.split(".")[0]):
        major = int(torch_cuda.split(".")[0])
        raise ImportError(f"CuPy runs on CUDA {runtime // 1000}.{runtime % 1000 // 10} but torch {torch.__version__} "
                          f"is built for CUDA {torch_cuda}: pip install {cupy_package(major)} in place of "
                          "the CuPy you have")
    return cupy


class CudaPlaneTransfer:
    """Moves three planes (H, W), float32 or 16-bit (read as [0, 1]), to a float32 (1, 3, H, W) CUDA tensor, and
    float32 frames back, per thread."""

    def __init__(self, device: torch.device) -> None:
        self._cupy: Any = check_cupy()
        self.device = device
        self._local = threading.local()

    def _staging(self, shape: tuple[int, int, int]) -> tuple[np.ndarray, Any]:
        """A pinned host buffer and a CuPy stream for this thread, reused while the size stays."""
        local = self._local
        if getattr(local, "shape", None) != shape:
            cp = self._cupy
            memory = cp.cuda.alloc_pinned_memory(int(np.prod(shape)) * 4)
            local.host = np.frombuffer(memory, np.float32, int(np.prod(shape))).reshape(shape)
            local.memory = memory  # keeps the pinned allocation alive
            with cp.cuda.Device(self.device.index or 0):
                local.stream = cp.cuda.Stream(non_blocking=True)
            local.shape = shape
        return local.host, local.stream

    def upload(self, planes: Sequence[np.ndarray]) -> torch.Tensor:
        h, w = planes[0].shape
        host, stream = self._staging((3, h, w))
        for p, plane in enumerate(planes):
            if plane.dtype == np.uint16:
                np.multiply(plane, np.float32(1 / 65535), out=host[p])
            else:
                np.copyto(host[p], plane)
        cp = self._cupy
        with cp.cuda.Device(self.device.index or 0), stream:
            gpu = cp.empty((1, 3, h, w), dtype=cp.float32)
            gpu[0].set(host, stream=stream)
            stream.synchronize()  # the pinned buffer is reused by this thread's next upload
        return torch.from_dlpack(gpu)

    def download(self, frame: torch.Tensor) -> np.ndarray:
        """(3, H, W) CUDA tensor -> pinned host array (valid until this thread's next transfer)."""
        cp = self._cupy
        gpu = cp.from_dlpack(frame.detach().float().contiguous())
        host, stream = self._staging(tuple(frame.shape))  # type: ignore[arg-type]
        with cp.cuda.Device(self.device.index or 0), stream:
            gpu.get(stream=stream, out=host)
            stream.synchronize()
        return host
