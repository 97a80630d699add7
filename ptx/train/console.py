"""What the command line prints for people: ptx's own lines, other libraries' INFO chatter hidden.

Orbax, grain, TFDS and absl log dozens of INFO lines per checkpoint (temporary folder renames, OCDBT merges,
thread joins). By default only INFO lines written by ptx (its package, configs and data builders) are shown,
with a short time prefix; warnings and errors from anywhere always are. ``--verbose`` (or absl's ``-v 1``)
shows everything in absl's full format.
"""

from __future__ import annotations

import logging
import pathlib

from absl import logging as absl_logging

from ptx import bundled

SHORT_FORMAT = "%(asctime)s %(message)s"
SHORT_DATE = "%H:%M:%S"


def own_folders() -> tuple[str, ...]:
    """Folders whose INFO lines are ptx's own: the package, its configs and its data builders."""
    folders = [pathlib.Path(bundled.__file__).resolve().parent]
    for find in (bundled.configs_dir, bundled.builders_dir):
        try:
            folders.append(find())
        except ModuleNotFoundError:
            pass
    return tuple(str(f) + "/" for f in folders)


# Warnings of other libraries that say nothing a user can act on (TFDS looks into a dataset folder it is
# about to build, or that a build is writing).
HARMLESS_WARNINGS = ("has no dataset_info.json",)


class OwnInfoOnly(logging.Filter):
    """Passes warnings and above from anywhere (but :data:`HARMLESS_WARNINGS`), lower levels only from files
    under ``folders``."""

    def __init__(self, folders: tuple[str, ...]):
        super().__init__()
        self.folders = folders
        self._own: dict[str, bool] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return not any(h in record.getMessage() for h in HARMLESS_WARNINGS)
        own = self._own.get(record.pathname)
        if own is None:
            own = str(pathlib.Path(record.pathname).resolve()).startswith(self.folders)
            self._own[record.pathname] = own
        return own


class ShortFormatter(logging.Formatter):
    """``12:03:04 message``; warnings and errors keep their level: ``12:03:04 WARNING message``."""

    def __init__(self):
        super().__init__(SHORT_FORMAT, SHORT_DATE)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            date, _, message = text.partition(" ")
            return f"{date} {record.levelname} {message}"
        return text


def configure(verbose: bool) -> None:
    """Set up absl's handler (after flags are parsed): quiet and short unless ``verbose``."""
    handler = absl_logging.get_absl_handler()
    for f in [f for f in handler.filters if isinstance(f, OwnInfoOnly)]:
        handler.removeFilter(f)
    if verbose or absl_logging.get_verbosity() > absl_logging.INFO:
        return
    handler.addFilter(OwnInfoOnly(own_folders()))
    handler.setFormatter(ShortFormatter())
