"""File formats ptx reads and writes that belong to no one model or method (``torch_pickle``: PyTorch ``.pth``
state dicts without torch). Imports nothing else from ptx, so layers, metrics and converters can all use it."""
