"""Builds onnx-sparsify: CMake compiles the ONNX Runtime plugin and the pybind11 module straight
into the `onnx_sparsify` package folder, so both ship in the wheel (see CMakeLists.txt)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "rewriter" / "_version.py").read_text()).group(1)


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        ext_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        import pybind11

        config = os.environ.get("CMAKE_BUILD_TYPE", "Release")
        args = [
            f"-DCMAKE_BUILD_TYPE={config}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={ext_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DONNX_SPARSIFY_VERSION={VERSION}",
        ]
        if shutil.which("ninja") or _has_ninja_module():
            args.append("-GNinja")
        args += cmake_args_from_env(os.environ)
        # pip builds in a fresh isolated environment each time: a cache naming the last one's
        # ninja or pybind11 would break the configure step.
        (build_dir / "CMakeCache.txt").unlink(missing_ok=True)
        subprocess.run(["cmake", str(ROOT), *args], cwd=build_dir, check=True)
        subprocess.run(["cmake", "--build", ".", "--parallel", str(os.cpu_count() or 2)], cwd=build_dir, check=True)


def cmake_args_from_env(environ: Mapping[str, str]) -> list[str]:
    """CMAKE_ARGS split as a POSIX shell would: -DFLAGS="-O2 -g" stays one argument."""
    return shlex.split(environ.get("CMAKE_ARGS", ""))


def _has_ninja_module() -> bool:
    try:
        import ninja  # noqa: F401
    except ImportError:
        return False
    return True


setup(
    name="onnx-sparsify",
    version=VERSION,
    description="Make pruned convolutional networks run faster in ONNX Runtime: SparseConv plugin and rewriter",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=["onnx_sparsify"],
    package_dir={"onnx_sparsify": "rewriter"},
    ext_modules=[CMakeExtension("onnx_sparsify._core")],
    cmdclass={"build_ext": CMakeBuild},
    install_requires=["numpy>=1.21", "onnx>=1.14", "onnxruntime>=1.21", "rich>=12"],
    entry_points={
        "console_scripts": [
            "onnx-sparsify=onnx_sparsify.cli:main",
            "onnx-sparsify-calibrate=onnx_sparsify.cli:calibrate_main",
        ]
    },
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80", "matplotlib>=3.5"],
        "bench": ["matplotlib>=3.5"],
    },
    zip_safe=False,
)
