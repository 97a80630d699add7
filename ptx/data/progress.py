"""Progress of long host loops (a dataset build): a live bar on a terminal, a few plain lines otherwise.

On a terminal (``stream.isatty()``) this is tqdm's bar. Elsewhere (a log file, CI, a notebook's captured
output) carriage-return bars become hundreds of garbled lines, so it prints at most ``LINES + 1`` lines: the
start, then every quarter with the rate and the time left, then the total time.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import IO, TypeVar

T = TypeVar("T")
LINES = 4  # plain lines between the first and the last when not on a terminal


def track(items: Iterable[T], desc: str, *, unit: str = "item", stream: IO[str] | None = None) -> Iterator[T]:
    """Yields ``items`` while showing how far along the loop is (module docstring)."""
    stream = stream or sys.stderr
    total = len(items) if isinstance(items, Sized) else None
    if _is_terminal(stream):
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=unit, file=stream, dynamic_ncols=True)
        return
    yield from _plain(items, desc, total, unit, stream)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _plain(items: Iterable[T], desc: str, total: int | None, unit: str, stream: IO[str]) -> Iterator[T]:
    start = time.perf_counter()
    of = f"/{total}" if total else ""
    print(f"{desc}: 0{of} {unit}s", file=stream, flush=True)
    marks = {round(total * k / (LINES + 1)) for k in range(1, LINES + 1)} if total else set()
    done = 0
    for item in items:
        yield item
        done += 1
        if done in marks and done != total:
            elapsed = time.perf_counter() - start
            rate = done / max(elapsed, 1e-9)
            left = (total - done) / rate
            print(
                f"{desc}: {done}{of} {unit}s ({rate:.3g} {unit}s/s, {left:.0f} s left)",
                file=stream,
                flush=True,
            )
    print(f"{desc}: {done}{of} {unit}s in {time.perf_counter() - start:.1f} s", file=stream, flush=True)


@contextlib.contextmanager
def tfds_bars_off() -> Iterator[None]:
    """TFDS's own bars (one per split and stage, unreadable outside a terminal) off within the block."""
    from tensorflow_datasets.core.utils import tqdm_utils

    was = tqdm_utils._active  # TFDS offers only a setter (display_progress_bar)
    tqdm_utils.display_progress_bar(False)
    try:
        yield
    finally:
        tqdm_utils.display_progress_bar(was)
