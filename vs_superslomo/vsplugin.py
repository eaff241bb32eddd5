"""The Python side of the native ``slomo`` plugin: registers ``interpolate`` on a core.

The native shim imports this module and calls :func:`register_current_core` the first time
``core.slomo.Interpolate`` is used on a core; the registration is dropped when that core's
environment is destroyed, so nothing is kept alive per core.
"""

from __future__ import annotations

from typing import Any

import vapoursynth as vs

from .filter import interpolate

_PLUGIN_NAMESPACE = "slomo"


def _plugin_interpolate(clip: vs.VideoNode, **kwargs: Any) -> vs.VideoNode:
    # Arguments arrive as VapourSynth map values: bools as ints, strings as str or bytes.
    for name in ("model", "device", "dis_preset"):
        if isinstance(kwargs.get(name), bytes):
            kwargs[name] = kwargs[name].decode()
    for name in ("fp16", "sc"):
        if name in kwargs:
            kwargs[name] = bool(kwargs[name])
    return interpolate(clip, **kwargs)


def register_current_core() -> None:
    """Register the implementation on the current core and drop it when its environment ends."""
    plugin = getattr(vs.core, _PLUGIN_NAMESPACE)
    plugin.Register(_plugin_interpolate)

    def unregister() -> None:
        plugin.Register()

    vs.register_on_destroy(unregister)
