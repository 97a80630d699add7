"""Parity check of a ptx port against a golden fixture recorded from the original implementation.

    python -m ptx.tools.check_golden ../shared/golden/gfla_fashion_small.npz [--rtol 1e-4]

The fixture's method is the file-name prefix (``gfla_…`` -> ``ptx.convert.gfla``). Each converter module
provides ``run_golden(arrays, meta) -> {output name: (ptx value, reference value)}``: it builds the ptx model
from the fixture's recorded options, converts the recorded state dict, and runs the same inputs.
Exit status 1 when any output's relative error exceeds the tolerance.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys

import numpy as np

# Fixture prefix -> module with ``run_golden``: the only per-method lines here (one per method; converters for
# model fixtures, a loss hook for pSSIM).
CONVERTERS = {
    "gfla": "ptx.convert.gfla",
    "patn": "ptx.convert.patn",
    "pssim": "ptx.tools.golden_pssim",
    "openpose": "ptx.convert.openpose",
    "casd": "ptx.convert.casd",
    "defgan": "ptx.convert.defgan",
    "scagan": "ptx.convert.scagan",
}


def load_fixture(path: str | pathlib.Path) -> tuple[dict[str, np.ndarray], dict]:
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"golden fixture {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return arrays, meta


def converter_for(path: pathlib.Path):
    prefix = path.stem.split("_", 1)[0]
    if prefix not in CONVERTERS:
        raise SystemExit(
            f"{path.name}: no ptx converter for fixtures named '{prefix}_*' (known: {sorted(CONVERTERS)})"
        )
    return importlib.import_module(CONVERTERS[prefix])


def compare(results: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Max abs error, and relative error = max abs error / max abs reference value, per output."""
    report = {}
    for name, (got, want) in results.items():
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if got.shape != want.shape:
            raise AssertionError(f"{name}: shape {got.shape} != reference {want.shape}")
        err = float(np.max(np.abs(got - want))) if got.size else 0.0
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        report[name] = {"max_abs": err, "rel": err / max(scale, 1e-12)}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fixtures", nargs="+", help="golden .npz files")
    ap.add_argument("--rtol", type=float, default=1e-4, help="max relative error (default 1e-4)")
    args = ap.parse_args(argv)
    failed = False
    for f in args.fixtures:
        path = pathlib.Path(f)
        arrays, meta = load_fixture(path)
        report = compare(converter_for(path).run_golden(arrays, meta))
        for name, r in report.items():
            ok = r["rel"] <= args.rtol
            failed |= not ok
            print(
                f"{path.name:32s} {name:28s} max_abs {r['max_abs']:.3e}  rel {r['rel']:.3e}  {'ok' if ok else 'FAIL'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
