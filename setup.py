"""Declares the native extension: C99 kernels in csrc/ behind Cython bindings.

CLEARING_DEBUG=1 builds with Cython's bounds and wraparound checks on and -O1 -g, for the
kernel tests in CI. CLEARING_MARCH=native (or any -march value) opts in to CPU-specific code.
"""

import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("CLEARING_DEBUG", "") not in ("", "0")
march = os.environ.get("CLEARING_MARCH", "")

compile_args = ["-std=c99", "-O1", "-g"] if debug else ["-std=c99", "-O3"]
compile_args += ["-Wall", "-Wno-unused-function"]
if march:
    compile_args.append(f"-march={march}")

csrc = sorted(str(p) for p in Path("csrc").glob("*.c"))

extensions = [
    Extension(
        "engine._native._kernels",
        sources=["engine/_native/_kernels.pyx", *csrc],
        include_dirs=["csrc", np.get_include()],
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

directives = {
    "language_level": "3",
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
    "embedsignature": True,
}

setup(ext_modules=cythonize(extensions, compiler_directives=directives, force=debug))
