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


@pytest.fixture(scope="session")
def metrics_random_weights(golden_dir):
    """``shared/golden/metrics_random_weights.py``: regenerates the metric goldens' random state dicts."""
    spec = importlib.util.spec_from_file_location(
        "metrics_random_weights", golden_dir / "metrics_random_weights.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
