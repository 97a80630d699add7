"""Logs for people: other libraries' INFO lines filtered, a short format, one progress line per logging step,
a few plain progress lines off a terminal."""

import io
import logging

from absl import logging as absl_logging

from ptx import bundled
from ptx.data import progress
from ptx.train import console
from ptx.train import logging as tlog


def _record(pathname: str, level: int, msg: str = "message") -> logging.LogRecord:
    return logging.LogRecord("absl", level, pathname, 1, msg, None, None)


def test_only_ptx_info_lines_pass_and_every_warning_does():
    f = console.OwnInfoOnly(console.own_folders())
    orbax = "/venv/lib/python3.11/site-packages/orbax/checkpoint/_src/path/atomicity.py"
    assert not f.filter(_record(orbax, logging.INFO, "Renaming /x.orbax-checkpoint-tmp to /x"))
    assert f.filter(_record(orbax, logging.WARNING))
    assert f.filter(_record(console.__file__, logging.INFO))
    assert f.filter(_record(str(bundled.configs_dir() / "gfla_fashion.py"), logging.INFO))
    assert f.filter(_record(str(bundled.builders_dir() / "_common.py"), logging.INFO))
    tfds = "/venv/lib/python3.11/site-packages/tensorflow_datasets/core/utils/file_utils.py"
    assert not f.filter(_record(tfds, logging.WARNING, "Variant folder /d has no dataset_info.json"))


def test_configure_quiet_by_default_and_verbose_on_request():
    handler = absl_logging.get_absl_handler()
    formatter = handler.python_handler.formatter
    try:
        console.configure(verbose=False)
        assert any(isinstance(f, console.OwnInfoOnly) for f in handler.filters)
        assert isinstance(handler.python_handler.formatter, console.ShortFormatter)
        console.configure(verbose=True)
        assert not any(isinstance(f, console.OwnInfoOnly) for f in handler.filters)
    finally:
        for f in [f for f in handler.filters if isinstance(f, console.OwnInfoOnly)]:
            handler.removeFilter(f)
        handler.setFormatter(formatter)


def test_short_format_keeps_the_level_of_warnings():
    fmt = console.ShortFormatter()
    assert fmt.format(_record("x.py", logging.INFO, "stage flow")).split(" ", 1)[1] == "stage flow"
    assert fmt.format(_record("x.py", logging.WARNING, "careful")).split(" ", 1)[1] == "WARNING careful"


def test_progress_off_a_terminal_prints_a_few_lines():
    out = io.StringIO()
    assert list(progress.track(range(1000), "[puppets] train", unit="image", stream=out)) == list(range(1000))
    lines = out.getvalue().splitlines()
    assert len(lines) == progress.LINES + 2, lines
    assert lines[0] == "[puppets] train: 0/1000 images" and lines[-1].startswith("[puppets] train: 1000/1000")
    assert "\r" not in out.getvalue()


def test_progress_line_names_stage_rate_eta_and_main_losses():
    p = tlog.Progress(300, 0, "flow")
    losses = {"gen/loss": 1.5, "gen/l1": 0.25, "gen/style": 1.0, "disc/loss": 0.5, "disc/real": 0.3}
    line = p.line(120, {"steps_per_sec": 3.2, "eta_min": 1.0}, losses)
    assert line.startswith("flow  120/300 ( 40%)  3.2 steps/s  ETA 1:00"), line
    assert "gen 1.5 (style 1, l1 0.25)" in line and "disc 0.5 (real 0.3)" in line, line
    assert tlog.format_duration(4000) == "1:06:40" and tlog.format_duration(float("inf")) == "?"
