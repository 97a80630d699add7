"""The command line's compile settings: cheap LLVM passes only on CPU-only installs, a persistent cache."""

import jax

from ptx.train import compile_env


def test_cheap_llvm_flag_only_for_cpu_and_never_over_user_flags(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    compile_env.apply_xla_flags()
    assert compile_env._CHEAP_LLVM in compile_env.os.environ["XLA_FLAGS"]
    assert "--xla_force_host_platform_device_count=8" in compile_env.os.environ["XLA_FLAGS"]

    monkeypatch.setenv("XLA_FLAGS", "--xla_llvm_disable_expensive_passes=false")
    compile_env.apply_xla_flags()
    assert compile_env.os.environ["XLA_FLAGS"] == "--xla_llvm_disable_expensive_passes=false"

    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    monkeypatch.setenv("XLA_FLAGS", "")
    compile_env.apply_xla_flags()
    assert compile_env.os.environ["XLA_FLAGS"] == ""


def test_persistent_cache_directory(monkeypatch, tmp_path):
    old = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv(compile_env.CACHE_ENV, str(tmp_path / "xla"))
        assert compile_env.enable_persistent_cache() == str(tmp_path / "xla")
        assert (tmp_path / "xla").is_dir() and jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
        # An explicitly configured JAX cache wins (the tests' shared cache, a user's own).
        assert compile_env.enable_persistent_cache(str(tmp_path / "other")) == str(tmp_path / "xla")
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv(compile_env.CACHE_ENV, "")
        assert compile_env.enable_persistent_cache() is None
    finally:
        jax.config.update("jax_compilation_cache_dir", old)
