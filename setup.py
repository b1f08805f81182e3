"""Declares the native extensions: the engine's C99 kernels in csrc/ behind Cython bindings
(engine._native._kernels), and the benchmark's bandwidth baseline in bench/csrc/
(bench._read_baseline), which is built into the source tree only (`pip install -e .` or
`setup.py build_ext --inplace`), never into a wheel of the engine, and is not in the sdist
(MANIFEST.in lists what the sdist carries: csrc/, the .pyx and .pxd, the data).

CLEARING_DEBUG=1 builds with Cython's bounds and wraparound checks on, the kernels'
precondition asserts on (csrc/kernel_assert.h) and -O1 -g, for the kernel tests in CI. CLEARING_MARCH=native (or any -march value) opts in to CPU-specific code.
OpenMP is used when the compiler links a probe with -fopenmp (CLEARING_OPENMP=0 turns it
off); without it the same kernels build and run on one thread.
"""

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

debug = os.environ.get("CLEARING_DEBUG", "") not in ("", "0")
march = os.environ.get("CLEARING_MARCH", "")

compile_args = ["-std=c99", "-O1", "-g"] if debug else ["-std=c99", "-O3"]
# Python's own CFLAGS carry -fwrapv, which costs the sweep about 40%; the kernels never rely
# on signed wrap-around (they test overflow with builtins and 128-bit products).
compile_args += ["-fno-wrapv", "-Wall", "-Wno-unused-function"]
if march:
    compile_args.append(f"-march={march}")


def openmp_flags() -> list[str]:
    if os.environ.get("CLEARING_OPENMP", "1") == "0":
        return []
    compiler = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.c"
        probe.write_text("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        result = subprocess.run(
            [compiler, "-fopenmp", str(probe), "-o", str(Path(tmp) / "probe")],
            capture_output=True,
            check=False,
        )
    return ["-fopenmp"] if result.returncode == 0 else []


omp = openmp_flags()
compile_args += omp
csrc = sorted(str(p) for p in Path("csrc").glob("*.c"))
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if debug:
    macros.append(("CLEARING_DEBUG", "1"))

extensions = [
    Extension(
        "engine._native._kernels",
        sources=["engine/_native/_kernels.pyx", *csrc],
        include_dirs=["csrc", np.get_include()],
        extra_compile_args=compile_args,
        extra_link_args=omp,
        define_macros=macros,
    ),
]
if Path("bench/_read_baseline.pyx").is_file():  # a checkout, not an sdist
    extensions.append(
        Extension(
            "bench._read_baseline",
            sources=["bench/_read_baseline.pyx", "bench/csrc/read_bandwidth.c"],
            include_dirs=["bench/csrc"],
            extra_compile_args=compile_args,
        )
    )


class BuildExt(build_ext):
    """Leaves the benchmark's extension out of builds that are not in place (a wheel)."""

    def finalize_options(self) -> None:
        super().finalize_options()  # an editable install turns `inplace` on here
        if not self.inplace:
            self.extensions = [e for e in self.extensions if not e.name.startswith("bench.")]


directives = {
    "language_level": "3",
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
    "embedsignature": True,
}

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, force=debug),
    cmdclass={"build_ext": BuildExt},
)
