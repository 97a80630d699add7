"""Packages of the wheel (everything else is in pyproject.toml).

``configs/`` and ``data_builders/`` live at the repository root, where they run by path
(``--config configs/gfla_fashion.py:demo``, ``python -m data_builders``). Installed, they ship INSIDE ptx as
``ptx.configs`` and ``ptx.data_builders``, so site-packages gets no top-level package with those common
names (``ptx.bundled`` finds them in either layout). ``benchmarks/`` stays in the repository.
"""

from setuptools import find_packages, setup

BUNDLED = {"ptx.configs": "configs", "ptx.data_builders": "data_builders"}


def _bundled_packages() -> list[str]:
    out = []
    for package, folder in BUNDLED.items():
        out += [package, *(f"{package}.{sub}" for sub in find_packages(folder))]
    return out


setup(
    packages=[*find_packages(include=["ptx", "ptx.*"]), *_bundled_packages()],
    package_dir=BUNDLED,
)
