"""``python -m ptx.main``'s contract with schedulers and with the run's record: a preempted run exits 75 (a
finished one 0), and only training writes ``config.json`` (eval and sample never rewrite it)."""

import pathlib

import pytest
from absl import flags

from ptx import main as cli
from ptx.train import loop

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def parse(monkeypatch):
    def parse(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["ptx.main", f"--config={REPO / 'configs/toy_puppets.py'}:tiny", *args])

    yield parse
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("status, code", [("finished", None), ("preempted", cli.EXIT_PREEMPTED)])
def test_exit_status_tells_preempted_from_finished(parse, monkeypatch, tmp_path, status, code):
    monkeypatch.setattr(loop, "run", lambda config, workdir: loop.RunResult(status, "full", 3, 6, {}))
    parse(f"--workdir={tmp_path}")
    if code is None:
        cli.main(["ptx.main"])
    else:
        with pytest.raises(SystemExit) as e:
            cli.main(["ptx.main"])
        assert e.value.code == code == 75
    assert (tmp_path / "config.json").exists()  # training writes the record


def test_eval_does_not_rewrite_the_run_record(parse, monkeypatch, tmp_path):
    record = tmp_path / "config.json"
    record.write_text('{"seed": 123}\n')
    monkeypatch.setattr(loop, "evaluate", lambda config, workdir: {"ssim": 0.5})
    parse(f"--workdir={tmp_path}", "--mode=eval")
    cli.main(["ptx.main"])
    assert record.read_text() == '{"seed": 123}\n'


def test_user_errors_are_one_line_with_exit_2(tmp_path):
    """Each command line: an input error prints ``error: ...`` on one line (no traceback) and exits 2."""
    import subprocess
    import sys

    truncated = tmp_path / "gen" / "a.png"
    truncated.parent.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 128), (9, 9, 9)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    toy = f"{REPO / 'configs/toy_puppets.py'}:tiny"
    cases = [
        (
            ["ptx.main", f"--config={toy}", f"--workdir={tmp_path / 'w'}", "--config.data.batch_size=-2"],
            "batch size -2",
        ),
        (
            ["ptx.main", f"--config={toy}", f"--workdir={tmp_path / 'w'}", "--config.stages[5].num_steps=3"],
            "stages",
        ),
        (["ptx.evaluate", "--generated", str(truncated.parent), "--real", str(truncated.parent)], "a.png"),
        (
            ["ptx.convert", "gfla", "--generator", str(tmp_path / "none.pth"), "--out", str(tmp_path / "o")],
            "none.pth",
        ),
    ]
    for argv, needle in cases:
        out = subprocess.run(
            [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        assert out.returncode == 2, (argv, out.stderr[-2000:])
        problem = [line for line in lines if line.startswith(("error: ", "FATAL flags error: "))]
        assert "Traceback" not in out.stderr and len(problem) == 1, (argv, out.stderr[-2000:])
        assert needle in out.stderr[out.stderr.index(problem[0]) :], (argv, out.stderr[-2000:])
