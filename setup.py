"""Builds the native slot kernel (slotsweep/nn/fused_kernel.c) when slotsweep is installed.

The kernel is plain C loaded with ctypes (`slotsweep.nn.native`), built here as the extension
`slotsweep.nn._slot_kernel` with the flags of `slotsweep/nn/kernel_build.py`, tried in order
(-march=native first). The digest of the build (source, flags, CPU) is compiled into it, so
that another CPU, or an edited source, builds its own at run time instead. Without a compiler
the install still succeeds (`optional`), and trials build the kernel at run time or fall back to
the PyTorch update.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
BUILD = runpy.run_path(str(HERE / "slotsweep" / "nn" / "kernel_build.py"))


class BuildKernel(build_ext):
    """Compiles the kernel with the first flag set the compiler accepts, then records it."""

    def build_extension(self, ext: Extension) -> None:
        errors = []
        source = (HERE / ext.sources[0]).read_bytes()
        for flags in BUILD["FLAG_SETS"]:
            identity = BUILD["build_identity"](source, flags)
            ext.define_macros = [("SLOT_KERNEL_IDENTITY", f'"{identity}"')]
            ext.extra_compile_args = list(flags)
            ext.extra_link_args = [f for f in flags if f == "-fopenmp"]
            try:
                super().build_extension(ext)
                return
            except Exception as error:  # noqa: BLE001 - the compiler's errors vary by platform
                errors.append(f"{' '.join(flags)}: {error}")
        raise RuntimeError("the native slot kernel did not build: " + "; ".join(errors))


setup(
    ext_modules=[
        Extension(
            f"slotsweep.nn.{BUILD['PREBUILT_NAME']}", ["slotsweep/nn/fused_kernel.c"], optional=True
        )
    ],
    cmdclass={"build_ext": BuildKernel},
)
