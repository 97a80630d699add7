"""``pip install .`` as a user gets it: the wheel puts no top-level ``configs``, ``data_builders`` or
``benchmarks`` into site-packages, and configs run by name from another directory.

Builds the wheel from a copy of the sources (``pip wheel --no-deps --no-build-isolation``: nothing is
downloaded), installs it into a fresh venv that sees this interpreter's site-packages for the dependencies
(a ``.pth`` file; ``venv --system-site-packages`` would only see the base interpreter's), then from a folder
that holds a foreign ``configs`` package: lists the models, builds the tiny puppets with
``python -m ptx.data.build`` and trains ``--config toy_puppets:tiny``, whose output must carry no Orbax INFO
line and end with the summary's closing lines. Marked ``install`` (runs in CI; ``-m 'not install'`` skips it).
"""

import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

pytestmark = pytest.mark.install

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "ptx", "configs", "data_builders")
ORBAX_INFO = ("checkpoint_manager.py", "atomicity.py", "Renaming", "OCDBT", "_SignalingThread.join")


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            root / "dist",
            src,
        ]
    )
    wheel = next((root / "dist").glob("ptx-*.whl"))
    env_dir = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir])
    python = env_dir / "bin" / "python"
    purelib = pathlib.Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    parents = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    (purelib / "_ptx_test_dependencies.pth").write_text("\n".join(dict.fromkeys(parents)) + "\n")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel])
    return python, purelib, root


def _env(root: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
    env.update(
        JAX_PLATFORMS="cpu", PTX_COMPILATION_CACHE=str(root / "xla"), JAX_DISABLE_MOST_OPTIMIZATIONS="1"
    )
    return env


def test_wheel_installs_only_ptx(venv):
    _, purelib, _ = venv
    top = {p.name for p in purelib.iterdir()}
    assert not {"configs", "data_builders", "benchmarks"} & top, sorted(top)
    assert (purelib / "ptx" / "configs" / "toy_puppets.py").is_file()
    assert (purelib / "ptx" / "data_builders" / "puppets" / "puppets.py").is_file()


def test_configs_by_name_from_another_folder(venv):
    python, purelib, root = venv
    elsewhere = root / "elsewhere"
    (elsewhere / "configs").mkdir(parents=True)
    (elsewhere / "configs" / "__init__.py").write_text("raise ImportError('a foreign configs package')\n")
    check = (
        "import ptx, ptx.api as api\n"
        f"assert ptx.__file__.startswith({str(purelib)!r}), ptx.__file__\n"
        "assert 'gfla_fashion' in ptx.list_models() and 'toy_puppets' in ptx.list_models()\n"
        "assert api.model_config('gfla_fashion', 'tiny').method == 'gfla'\n"
    )
    _run([python, "-c", check], cwd=elsewhere, env=_env(root))
    data = root / "data"
    build = _run(
        [python, "-m", "ptx.data.build", "puppets", "--data_dir", data, "--config", "fashion_tiny"],
        cwd=elsewhere,
        env=_env(root),
    )
    assert "puppets/test: 12 images" in build.stdout, build.stdout
    train = _run(
        [python, "-m", "ptx.main", "--config", "toy_puppets:tiny", "--workdir", root / "run",
         f"--config.data.data_dir={data}"],
        cwd=elsewhere,
        env=_env(root),
    )  # fmt: skip
    assert sorted(p.name for p in (root / "run" / "checkpoints").iterdir()) == ["5", "6"]
    out = train.stdout + train.stderr
    assert not [line for line in out.splitlines() if any(s in line for s in ORBAX_INFO)], out
    assert "full  3/3 (100%)" in out and "mean train image" in out, out
    last = train.stdout.strip().splitlines()
    assert last[-2].startswith("sample from it:") and "--mode sample" in last[-2], out
    assert (root / "run" / "report.html").is_file()
