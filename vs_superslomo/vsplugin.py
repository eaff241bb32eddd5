"""The Python side of the native ``slomo`` plugin: registers ``interpolate`` on a core.

The native shim imports this module and calls :func:`register_current_core` the first time
``core.slomo.Interpolate`` is used on a core; the registration is dropped when that core's
environment is destroyed, so nothing is kept alive per core.

A user error comes back to the shim as the value of :data:`ERROR_KEY` rather than as an exception,
whose text VapourSynth would deliver as a whole traceback.
"""

from __future__ import annotations

from typing import Any

import vapoursynth as vs

from .filter import SloMoError, interpolate
from .options import from_plugin_map

_PLUGIN_NAMESPACE = "slomo"
ERROR_KEY = "slomo_error"  # read by csrc/slomo_plugin.c


def _plugin_interpolate(clip: vs.VideoNode, **kwargs: Any) -> vs.VideoNode | dict[str, str]:
    try:
        return interpolate(clip, **from_plugin_map(kwargs))
    except SloMoError as e:
        return {ERROR_KEY: e.reason}


def register_current_core() -> None:
    """Register the implementation on the current core and drop it when its environment ends."""
    plugin = getattr(vs.core, _PLUGIN_NAMESPACE)
    plugin.Register(_plugin_interpolate)

    def unregister() -> None:
        plugin.Register()

    vs.register_on_destroy(unregister)
