"""The Colab notebooks: valid, their CPU-runnable cells run, and the demo runs top to bottom (slow)."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

LAUNCH = pathlib.Path(__file__).resolve().parents[1] / "launch"


def _run(nb, tmp_path, timeout):
    env = {
        "XLA_FLAGS": "",
        "PTX_NOTEBOOK_TINY": "1",
        "PTX_NOTEBOOK_DIR": str(tmp_path),
        "PTX_DRIVE": str(tmp_path),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(LAUNCH.parent)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


@pytest.mark.parametrize("name", ["colab_demo", "colab_tpu_train"])
def test_notebooks_are_valid(name):
    nb = nbformat.read(LAUNCH / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert any(c.cell_type == "code" for c in nb.cells)


def test_tpu_notebook_cpu_cells_run(tmp_path):
    nb = nbformat.read(LAUNCH / "colab_tpu_train.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if "tpu-only" not in c.metadata.get("tags", [])]
    out = _run(nb, tmp_path, timeout=300)
    text = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.outputs)
    assert "global batch" in text


@pytest.mark.slow
def test_demo_notebook_runs_top_to_bottom(tmp_path):
    nb = nbformat.read(LAUNCH / "colab_demo.ipynb", as_version=4)
    out = _run(nb, tmp_path, timeout=1800)
    text = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.outputs)
    assert "frames ->" in text
    assert (tmp_path / "gfla_tiny" / "walk.gif").exists()
