"""Shared test setup: 8 simulated CPU devices, the golden fixture folder, small helpers."""

import importlib.util
import os
import pathlib

# Must happen before jax is imported anywhere (tests that need other device counts use subprocesses).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
GOLDEN_DIR = pathlib.Path(os.environ.get("PTX_GOLDEN_DIR", REPO.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def golden_dir() -> pathlib.Path:
    if not GOLDEN_DIR.is_dir():
        pytest.fail(f"golden fixtures not found at {GOLDEN_DIR} (set PTX_GOLDEN_DIR)")
    return GOLDEN_DIR


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small ops on the shared 2-core machine: two OpenMP threads spin at every barrier while the other
    core is busy elsewhere (a tiny step took 13 s with 2 threads vs 0.1 s with 1 under load 6). Modules of
    PyTorch reference tests use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def metrics_random_weights(golden_dir):
    """``shared/golden/metrics_random_weights.py``: regenerates the metric goldens' random state dicts."""
    spec = importlib.util.spec_from_file_location(
        "metrics_random_weights", golden_dir / "metrics_random_weights.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
