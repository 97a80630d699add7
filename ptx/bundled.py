"""The repository folders ``configs/`` and ``data_builders/``, in a checkout and in an installed wheel.

In the repository they sit beside ``ptx/`` and run by path (``--config configs/gfla_fashion.py:demo``,
``python -m data_builders ...``). An installed wheel carries them INSIDE ptx (``ptx/configs``,
``ptx/data_builders``; see ``setup.py``), so site-packages gets no top-level package with those common names.
This module finds them in either layout and runs config files by name or by path.

Config files import their shared blocks as ``from configs import common`` (and one another as
``from configs.patn_fashion import ...``). While a config file runs, the name ``configs`` means the folder
the file lives in, or ptx's own configs folder for a file elsewhere; a different ``configs`` module that was
imported before (another project's) is put back afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import pathlib
import sys
import types
from collections.abc import Iterator
from typing import Any

_PTX_DIR = pathlib.Path(__file__).resolve().parent
CONFIGS = "configs"
DATA_BUILDERS = "data_builders"


def _folder(name: str) -> pathlib.Path:
    """``ptx/<name>`` in a wheel, else ``<checkout>/<name>`` beside ``ptx/`` (a source tree, editable or on
    PYTHONPATH), else wherever the import system maps ``ptx.<name>``."""
    inside = _PTX_DIR / name
    if (inside / "__init__.py").is_file():
        return inside
    root = _PTX_DIR.parent
    if (root / name / "__init__.py").is_file() and (root / "pyproject.toml").is_file():
        return root / name
    spec = importlib.util.find_spec(f"ptx.{name}")
    if spec is not None and spec.submodule_search_locations:
        return pathlib.Path(list(spec.submodule_search_locations)[0]).resolve()
    raise ModuleNotFoundError(
        f"ptx's {name} folder is neither inside the installed package ({inside}) nor in a checkout beside it "
        f"({root / name}); reinstall ptx (pip install .) or run from a checkout"
    )


def configs_dir() -> pathlib.Path:
    """The folder of ptx's config files."""
    return _folder(CONFIGS)


def builders_dir() -> pathlib.Path:
    """The folder of ptx's TFDS builders."""
    return _folder(DATA_BUILDERS)


def config_names() -> list[str]:
    """Config names usable as ``--config NAME:variant`` and ``ptx.sample(model=NAME)`` (file stems)."""
    return sorted(
        p.stem for p in configs_dir().glob("*.py") if p.stem != "common" and not p.stem.startswith("_")
    )


def resolve_config_spec(spec: str) -> str:
    """``NAME[:arg]`` -> ``<configs dir>/NAME.py[:arg]`` when NAME is a ptx config and no file of that
    path exists; anything else is returned as given (a path, with or without ``:arg``)."""
    path, colon, arg = spec.partition(":")
    if pathlib.Path(path).is_file() or "/" in path or path.endswith(".py"):
        return spec
    if path in config_names():
        return f"{configs_dir() / (path + '.py')}{colon}{arg}"
    return spec


def unknown_config_message(spec: str) -> str | None:
    """A one-line explanation when ``spec`` names neither a config file nor a ptx config; else None."""
    path = spec.partition(":")[0]
    if pathlib.Path(path).is_file():
        return None
    return (
        f"--config {spec}: no config file {path!r} and no ptx config of that name; give a path "
        f"(configs/gfla_fashion.py:demo) or one of: {', '.join(config_names())}"
    )


def _package_dir(module: types.ModuleType | None) -> pathlib.Path | None:
    locations = getattr(module, "__path__", None)
    return pathlib.Path(list(locations)[0]).resolve() if locations else None


def _importable_configs_dir() -> pathlib.Path | None:
    """The folder ``import configs`` gives now (already imported, or found on sys.path), if any."""
    if CONFIGS in sys.modules:
        return _package_dir(sys.modules[CONFIGS])
    spec = importlib.util.find_spec(CONFIGS)
    return (
        pathlib.Path(list(spec.submodule_search_locations)[0]).resolve()
        if spec and spec.submodule_search_locations
        else None
    )


def _own_configs_folder(path: pathlib.Path) -> pathlib.Path:
    """The folder a config file's ``configs`` means: its own, when it is a configs package (has
    ``common.py``), else ptx's."""
    folder = path.resolve().parent
    return (
        folder if (folder / "common.py").is_file() and (folder / "__init__.py").is_file() else configs_dir()
    )


@contextlib.contextmanager
def configs_package(folder: str | pathlib.Path) -> Iterator[None]:
    """Within the block, ``import configs`` gives ``folder`` (nothing changes when it already does)."""
    folder = pathlib.Path(folder).resolve()
    if _importable_configs_dir() == folder:
        yield
        return
    ours = [k for k in sys.modules if k == CONFIGS or k.startswith(CONFIGS + ".")]
    saved = {k: sys.modules.pop(k) for k in ours}
    spec = importlib.util.spec_from_file_location(
        CONFIGS, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[CONFIGS] = package
    try:
        spec.loader.exec_module(package)
        yield
    finally:
        for k in [k for k in sys.modules if k == CONFIGS or k.startswith(CONFIGS + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)


def config_file_folder(spec: str) -> pathlib.Path:
    """The folder ``configs`` must mean while the config file of ``spec`` (a path or a name) runs."""
    return _own_configs_folder(pathlib.Path(resolve_config_spec(spec).partition(":")[0]))


def load_config(spec: str) -> Any:
    """``get_config(arg)`` of ``NAME[:arg]`` or ``path/to/file.py[:arg]`` (what ``--config`` accepts)."""
    path, _, arg = resolve_config_spec(spec).partition(":")
    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(unknown_config_message(spec))
    with configs_package(_own_configs_folder(file)):
        module_spec = importlib.util.spec_from_file_location(f"_ptx_config_{file.stem}", file)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.get_config(arg or None)


def model_config(name: str, arg: str | None = None) -> Any:
    """``get_config(arg)`` of ptx's config ``name``; an unknown name raises a ValueError listing the known."""
    if name not in config_names():
        raise ValueError(f"unknown model {name!r}; available: {', '.join(config_names())}")
    return load_config(f"{name}:{arg or ''}")


# ---------------------------------------------------------------------------------------------- builders


def data_builders() -> types.ModuleType:
    """ptx's TFDS builders package, the module ``import data_builders`` gives (importing it registers the
    builders with TFDS, so there must never be two copies of it)."""
    expose_data_builders()
    return importlib.import_module(DATA_BUILDERS)


def data_builders_cli() -> types.ModuleType:
    """The builders' command line module (``main(argv)``)."""
    data_builders()
    return importlib.import_module(f"{DATA_BUILDERS}.__main__")


class _AliasLoader(importlib.abc.Loader):
    """Gives the already imported module ``target`` (one module object under two names, never two copies:
    TFDS would see every builder class registered twice)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        pass


class _BundledBuildersFinder(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: ``import data_builders[.x]`` finds ``ptx.data_builders[.x]`` when nothing
    else provides the name (an installed wheel; a checkout imports its own folder first)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != DATA_BUILDERS and not fullname.startswith(DATA_BUILDERS + "."):
            return None
        real = f"ptx.{fullname}"
        try:
            found = importlib.util.find_spec(real)
        except ModuleNotFoundError:
            return None
        if found is None:
            return None
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(real), is_package=found.submodule_search_locations is not None
        )


def expose_data_builders() -> None:
    """Let ``import data_builders`` (the repository name ptx.data.pipeline imports) work from a wheel."""
    if not any(isinstance(f, _BundledBuildersFinder) for f in sys.meta_path):
        sys.meta_path.append(_BundledBuildersFinder())
