"""``python -m ptx.convert <method> ...``: runs ``ptx.convert.<method>.cli(argv)`` (official weights -> ptx)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import ptx.convert


def _methods() -> list[str]:
    skip = {"common", "torch_io"}
    return sorted(
        m.name
        for m in pkgutil.iter_modules(ptx.convert.__path__)
        if not m.name.startswith("_") and m.name not in skip
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    methods = _methods()
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m ptx.convert <method> [options]   (methods: {', '.join(methods)})")
        return 0 if argv else 2
    method, rest = argv[0], argv[1:]
    if method not in methods:
        print(
            f"error: {method}: no converter for this method; expected one of {', '.join(methods)}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"ptx.convert.{method}")
    if not hasattr(module, "cli"):
        print(f"ptx.convert.{method} has no command line (no cli(argv))", file=sys.stderr)
        return 2
    return int(module.cli(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
