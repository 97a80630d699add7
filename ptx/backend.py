"""Where traced code will run, and whether the XLA:CPU rewrites apply: decided in this one place.

Some layers and ops are written differently for XLA:CPU because that form measured faster there (per-tap
matmuls and a per-tap weight gradient in ``ptx.nn.layers.conv2d``, the phase-decomposed transposed conv,
the hand-written bilinear backward and dot-based channel sums in ``ptx.ops.resample``). Nothing was measured
on GPU or TPU, so every other backend gets the plain formulation (``lax.conv_general_dilated``, autodiff).

The choice is made when a function is traced, by :func:`cpu_rewrites`, in this order:

1. an override: ``with force_cpu_rewrites(True | False):`` (tests, benchmarks), else the environment variable
   ``PTX_CPU_REWRITES=1|0`` read once at import; both force either path on any backend;
2. the platform of JAX's default device when one is set (``with jax.default_device(jax.devices("cpu")[0]):``
   or the ``jax_default_device`` config);
3. ``jax.default_backend()``.

At trace time JAX does not know where the compiled program will run. A program traced on a GPU host and sent
to the CPU only through its inputs' placement or shardings therefore takes the plain path: correct values at
XLA:CPU's plain-convolution speed. Set ``jax.default_device`` (or the override) to get the rewrites there.
(``lax.platform_dependent`` would choose at lowering, but it traces both formulations of every convolution,
doubling tracing work in the conv-heavy models, for a case ``jax.default_device`` already covers.)

The override is a ``jax.make_user_context``, so it is part of JAX's jit cache key: a jitted function called
under another setting is traced again rather than reusing the other path's program.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import jax

ENV = "PTX_CPU_REWRITES"


def _from_env(value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENV} must be 1 or 0 (or unset for automatic), got {value!r}")


_OVERRIDE = jax.make_user_context(default_value=_from_env(os.environ.get(ENV)))


def target_platform() -> str:
    """Platform ("cpu", "gpu", "tpu", ...) the code being traced now is meant for (see the module doc)."""
    device = jax.config.jax_default_device
    if device is not None:
        return device if isinstance(device, str) else device.platform
    return jax.default_backend()


def cpu_rewrites() -> bool:
    """Whether layers and ops should use their XLA:CPU formulations in the trace being built now."""
    forced = _OVERRIDE.value
    if forced is not None:
        return bool(forced)
    return target_platform() == "cpu"


@contextmanager
def force_cpu_rewrites(enabled: bool | None) -> Iterator[None]:
    """Force the XLA:CPU formulations on (True) or off (False) on any backend; None restores the automatic
    choice. Jitted functions first called inside are traced for that setting."""
    with _OVERRIDE(None if enabled is None else bool(enabled)):
        yield
