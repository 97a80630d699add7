"""ptx.backend: which formulation the layers and ops trace (override, default device, default backend)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from ptx import backend


def test_automatic_choice_follows_the_default_device_then_the_default_backend(monkeypatch):
    assert jax.default_backend() == "cpu" and backend.cpu_rewrites()
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # a GPU host, as far as ptx can tell
    assert backend.target_platform() == "gpu" and not backend.cpu_rewrites()
    with jax.default_device(jax.devices("cpu")[0]):  # a CPU device chosen on that host gets the CPU forms
        assert backend.target_platform() == "cpu" and backend.cpu_rewrites()
    with jax.default_device("cpu"):
        assert backend.cpu_rewrites()


def test_override_forces_either_path_and_restores():
    with backend.force_cpu_rewrites(False):
        assert not backend.cpu_rewrites()
        with backend.force_cpu_rewrites(None):
            assert backend.cpu_rewrites()
        with backend.force_cpu_rewrites(True):
            assert backend.cpu_rewrites()
        assert not backend.cpu_rewrites()
    assert backend.cpu_rewrites()


def test_override_is_part_of_the_jit_cache_key():
    traces = []

    @jax.jit
    def f(x):
        traces.append(backend.cpu_rewrites())
        return x + (1.0 if backend.cpu_rewrites() else 2.0)

    assert float(f(jnp.zeros(()))) == 1.0
    with backend.force_cpu_rewrites(False):
        assert float(f(jnp.zeros(()))) == 2.0
    assert float(f(jnp.zeros(()))) == 1.0
    assert traces == [True, False]


@pytest.mark.parametrize("text,want", [("1", True), ("on", True), ("0", False), ("False", False), ("", None)])
def test_environment_values(text, want):
    assert backend._from_env(text) is want


def test_environment_rejects_other_values():
    with pytest.raises(ValueError, match="PTX_CPU_REWRITES"):
        backend._from_env("gpu")


def test_environment_variable_sets_the_default_at_import():
    env = {**os.environ, backend.ENV: "0", "JAX_PLATFORMS": "cpu"}
    code = "from ptx import backend; print(backend.cpu_rewrites())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
