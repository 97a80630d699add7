"""Former home of the ``.pth`` reader, now :mod:`ptx.io.torch_pickle`; kept as an alias while
``ptx.convert.gfla`` and ``ptx.convert.patn`` import it from here. New code imports ``ptx.io.torch_pickle``."""

from ptx.io.torch_pickle import load_state_dict, read_torch_file, unwrap_state_dict

__all__ = ["load_state_dict", "read_torch_file", "unwrap_state_dict"]
