"""Benchmarks: ``python -m benchmarks.NAME``. They compile with the same XLA settings as ``ptx.main``
(``ptx.train.compile_env``: on CPU-only installs, LLVM's expensive passes off), applied here, before JAX starts."""

from ptx.train import compile_env as _compile_env

_compile_env.apply_xla_flags()
