"""``python -m ptx.data.build NAME --data_dir DIR [--manual_dir DIR] [--config CONFIG]``: build a dataset.

The builders' command line (``python -m data_builders`` in a checkout), also from an installed wheel.
"""

from __future__ import annotations

import sys

from ptx import bundled


def main(argv: list[str] | None = None) -> int:
    cli = bundled.data_builders_cli()
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
