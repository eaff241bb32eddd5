"""VapourSynth planes to and from CUDA through CuPy: pinned staging memory, asynchronous copies on a
stream, and DLPack hand-over to torch without a device copy.

This is the only module that knows CuPy. Our CI has no GPU: it is not exercised by our tests.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class CudaPlaneTransfer:
    """Moves three float32 planes (H, W) to a (1, 3, H, W) CUDA tensor and back, per thread."""

    def __init__(self, device: torch.device) -> None:
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError("CUDA transfers need CuPy: pip install 'vs-superslomo[cuda]'") from e
        self._cupy: Any = cupy
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
