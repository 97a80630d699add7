"""Configs found by name in a checkout or an installed wheel, and run with ``configs`` meaning ptx's config
folder whatever else is importable under that name."""

import sys
import types

import pytest

from ptx import bundled


def test_config_names_and_specs():
    names = bundled.config_names()
    assert {"gfla_fashion", "toy_puppets", "patn_market"} <= set(names) and "common" not in names
    path = bundled.resolve_config_spec("toy_puppets:tiny,steps=2")
    assert path == f"{bundled.configs_dir() / 'toy_puppets.py'}:tiny,steps=2"
    assert bundled.resolve_config_spec("configs/toy_puppets.py:tiny") == "configs/toy_puppets.py:tiny"
    assert "toy_puppets" in bundled.unknown_config_message("toy_pupets:tiny")
    assert bundled.load_config("toy_puppets:tiny").method == "toy"


def test_configs_load_whatever_configs_module_is_imported(tmp_path, monkeypatch):
    """Another project's ``configs`` package already imported: ptx's configs still load, by name and by path
    (a config file outside ptx doing ``from configs import common`` gets ptx's common), and the other
    package is back in place afterwards."""
    foreign = types.ModuleType("configs")
    foreign.__path__ = [str(tmp_path / "elsewhere")]
    monkeypatch.setitem(sys.modules, "configs", foreign)
    for k in [k for k in sys.modules if k.startswith("configs.")]:
        monkeypatch.delitem(sys.modules, k)
    assert bundled.model_config("pssim_market", "tiny").method == "patn"  # imports configs.patn_fashion
    mine = tmp_path / "my_config.py"
    mine.write_text(
        "from configs import common\n\n\ndef get_config(arg=None):\n"
        "    c = common.base('toy')\n    c.seed = 7\n    return c\n"
    )
    assert bundled.load_config(f"{mine}:demo").seed == 7
    assert sys.modules["configs"] is foreign and "configs.common" not in sys.modules


def test_unknown_model_lists_the_known():
    with pytest.raises(ValueError, match="toy_puppets"):
        bundled.model_config("nope")
