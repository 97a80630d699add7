"""``python -m benchmarks.device_check`` runs unchanged on CPU (tiny sizes): a method's step compiles, runs and
stays finite, and every Pallas kernel (interpreted here) agrees with its jnp path. CI runs the toy method (the
contract test compiles every method's steps already); the slow test runs them all."""

import pytest

from benchmarks import device_check
from ptx import registry


def _check(methods, capsys):
    steps, kernels = device_check.run(["--size", "tiny", "--steps", "1", "--methods", ",".join(methods)])
    assert [r.method for r in steps] == list(methods)
    for r in steps:
        assert r.finite, r
        assert r.step_s > 0 and r.flops > 0 and r.images_per_s > 0
    assert {k.op for k in kernels} == {"resample", "gaussian_resample", "extract_blocks k3"}
    for k in kernels:
        assert k.mode == "interpreted"
        assert k.fwd_err < 1e-4 and k.grad_err < 1e-3, k
    out = capsys.readouterr().out
    assert "pallas kernel" in out and "TFLOP/s" in out


def test_device_check_on_cpu(capsys):
    _check(["toy"], capsys)


@pytest.mark.slow
def test_device_check_every_method(capsys):
    _check(sorted(registry.METHODS), capsys)
