"""``python -m benchmarks.compare`` on tiny configs: ptx and the PyTorch references timed in one process,
interleaved, with finite ratios whose spread holds the median, and a table that prints every row."""

import math
import statistics

import pytest

pytest.importorskip("torch")

from benchmarks import compare  # noqa: E402


def _check_rows(report, methods, works):
    assert [(r.method, r.work) for r in report.rows] == [(m, w) for m in methods for w in works[m]]
    for r in report.rows:
        assert len(r.ptx_wall) == len(r.ptx_cpu) == 2, r
        assert all(t > 0 and math.isfinite(t) for t in r.ptx_wall + r.ptx_cpu), r
        assert r.flops > 0 and r.compile_s > 0, r
        assert r.gflops_wall > 0 and r.gflops_cpu > 0, r


def test_generator_rows_against_pytorch(capsys):
    report = compare.main(["--tiny", "--methods", "gfla,patn", "--rounds", "2", "--skip-step"])
    _check_rows(report, ["gfla", "patn"], {"gfla": ["generator f+b"], "patn": ["generator f+b"]})
    for r in report.rows:
        assert r.has_torch and r.note == "", r
        assert len(r.torch_wall) == len(r.torch_cpu) == 2
        per_round = [p / t for p, t in zip(r.ptx_cpu, r.torch_cpu, strict=True)]
        assert r.ratio == pytest.approx(statistics.median(per_round))
        assert math.isfinite(r.ratio) and r.ratio > 0
        lo, hi = r.spread
        assert 0 < lo <= r.ratio <= hi
        assert r.batch == 1
    assert report.rows[0].size == (64, 64) and report.rows[1].size == (32, 24)
    wall, cpu = report.ceiling
    assert wall > 0 and cpu > 0
    assert all(len(load) == 3 for load in (report.load_start, report.load_end))

    out = capsys.readouterr().out
    assert "$ python -m benchmarks.compare --tiny --methods gfla,patn --rounds 2 --skip-step" in out
    assert "load average at start" in out and "load average at end" in out
    assert "f32 matmul ceiling" in out and " threads, OMP_WAIT_POLICY" in out
    lines = out.splitlines()
    for method in ("gfla", "patn"):
        header = lines.index(next(line for line in lines if line.startswith(f"{method} (")))
        row = lines[header + 2]
        assert row.strip().startswith("generator f+b"), row
        assert f"{report.rows[0 if method == 'gfla' else 1].ratio:5.2f} [" in row


def test_method_without_reference_gets_ptx_only_rows(capsys):
    """The toy method has no PyTorch reference: its rows (generator and train step) are ptx-only, said so."""
    report = compare.main(["--tiny", "--methods", "toy", "--rounds", "2", "--train-batch", "2"])
    _check_rows(report, ["toy"], {"toy": ["generator f+b", "train step 'full'"]})
    for r in report.rows:
        assert not r.has_torch and r.note == compare.NO_REFERENCE
        assert math.isnan(r.ratio)
    assert report.rows[1].batch == 2
    out = capsys.readouterr().out
    assert out.count(compare.NO_REFERENCE) == 2


def test_rounds_interleave_after_one_warmup_each():
    """ptx, PyTorch, ptx, PyTorch, ...: both sides see the same load drift, not one side the start of the run."""
    calls = []
    pw, pc, tw, tc = compare._interleave(lambda: calls.append("ptx"), lambda: calls.append("torch"), 3)
    assert calls == ["ptx", "torch"] * 4  # one warm-up pair, then three timed rounds
    assert len(pw) == len(pc) == len(tw) == len(tc) == 3


def test_unknown_method_is_refused():
    with pytest.raises(SystemExit, match="no config for"):
        compare.run(["--methods", "nosuch", "--tiny"])


@pytest.mark.slow
def test_train_step_rows_against_pytorch(capsys):
    """The full training step of both references (minutes on 2 shared cores: GFLA's step compiles slowly)."""
    report = compare.main(["--tiny", "--methods", "gfla,patn", "--rounds", "2", "--train-batch", "2"])
    steps = [r for r in report.rows if r.work.startswith("train step")]
    assert [r.work for r in steps] == ["train step 'full'", "train step 'train'"]
    for r in steps:
        lo, hi = r.spread
        assert r.has_torch and 0 < lo <= r.ratio <= hi and r.batch == 2
