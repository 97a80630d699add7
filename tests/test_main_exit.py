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
