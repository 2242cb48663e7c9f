"""How the native slot kernel is compiled: the flags, and the identity a built library carries.

Kept free of torch and of the rest of the package, so that `setup.py` runs it (with `runpy`)
to build the kernel when slotsweep is installed, and `native` uses the same flags and identity
for the run-time fallback build.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

SOURCE = Path(__file__).with_name("fused_kernel.c")
COMPILER = "gcc"
PREBUILT_NAME = "_slot_kernel"  # the extension module built at install, beside this file
# -ffp-contract=off keeps PyTorch's rounding (see the C file). Tried in order: -march=native
# (AVX2 loops on x86), then without it, then without OpenMP (single-threaded; e.g. Apple clang).
COMPILE_FLAGS = ("-O3", "-ffp-contract=off", "-fopenmp")
FLAG_SETS = (
    ("-march=native", *COMPILE_FLAGS),
    COMPILE_FLAGS,
    tuple(flag for flag in COMPILE_FLAGS if flag != "-fopenmp"),
)


def cpu_identity() -> str:
    """The CPU's feature flags: a -march=native build must not be loaded on another CPU model
    (a cluster's shared home, an image built on one machine and run on others)."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


def build_identity(source: bytes, flags: tuple[str, ...], compiler: str = COMPILER) -> str:
    """A digest of what a built kernel depends on: its source, compiler, flags and CPU."""
    digest = hashlib.sha256(source)
    for part in (compiler, " ".join(flags), platform.machine(), cpu_identity()):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:16]
