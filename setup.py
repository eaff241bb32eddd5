"""Builds the native `slomo` VapourSynth plugin into vapoursynth's plugin folder (site-packages)."""

import importlib.util
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def vapoursynth_include() -> str:
    spec = importlib.util.find_spec("vapoursynth")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("building vs-superslomo needs the vapoursynth wheel (for VapourSynth4.h)")
    return os.path.join(list(spec.submodule_search_locations)[0], "include")


class BuildPlugin(build_ext):
    """A plain shared library (no Python module, no libpython link) named like other VS plugins."""

    def get_ext_filename(self, fullname: str) -> str:
        return os.path.join(*fullname.split(".")) + ".so"

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return ["VapourSynthPluginInit2"]

    def build_extension(self, ext: Extension) -> None:
        ext.include_dirs.append(vapoursynth_include())
        super().build_extension(ext)


setup(
    ext_modules=[
        Extension(
            "vapoursynth.plugins.libvsslomo",
            sources=["csrc/slomo_plugin.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-fvisibility=hidden"],
            extra_link_args=["-ldl", "-lpthread"],
        )
    ],
    cmdclass={"build_ext": BuildPlugin},
)
