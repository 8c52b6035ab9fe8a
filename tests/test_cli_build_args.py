"""setup.py passes CMAKE_ARGS to CMake split as a shell would, so quoted flags keep their spaces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import setuptools


@pytest.fixture()
def setup_module(monkeypatch):
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: None)  # setup.py calls setup() on import
    spec = importlib.util.spec_from_file_location("setup_under_test", Path(__file__).parents[1] / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quoted_cmake_args_keep_their_spaces(setup_module) -> None:
    env = {"CMAKE_ARGS": "-DONNX_SPARSIFY_CUDA=OFF  -DCMAKE_CXX_FLAGS=\"-O2 -g\" -DX='a b'"}
    assert setup_module.cmake_args_from_env(env) == ["-DONNX_SPARSIFY_CUDA=OFF", "-DCMAKE_CXX_FLAGS=-O2 -g", "-DX=a b"]
    assert setup_module.cmake_args_from_env({}) == []
