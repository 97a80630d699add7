"""Command line: train, evaluate or sample with a config file. No logic here; see ``ptx.train.loop``.

    python -m ptx.main --config configs/gfla_fashion.py:demo --workdir /tmp/gfla
    python -m ptx.main --config configs/toy_puppets.py:tiny --workdir /tmp/toy --config.optim.gen.lr=1e-3
    python -m ptx.main --config configs/gfla_fashion.py --workdir /tmp/gfla --mode eval

Exit status: 0 when every stage finished, ``EXIT_PREEMPTED`` (75, EX_TEMPFAIL) when a SIGTERM or a preemption
notice stopped the run after saving a checkpoint (run the same command again to resume; ``launch/slurm_gpu.sbatch``
requeues on it), 2 for a usage error. Only training writes the run's ``config.json``: ``--mode eval`` and
``--mode sample`` read a workdir without rewriting its record.

Configs are locked: ``--config.key=value`` with a key the config lacks fails and lists the valid keys. Multi-host
runs (``launch/``) are joined with ``jax.distributed`` here, before anything touches a device. Compiled
programs are cached in ``$PTX_COMPILATION_CACHE`` (default ~/.cache/ptx/xla; empty disables), see
``ptx.train.compile_env``.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/<method>_<data>.py[:variant,switch=value]", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory: checkpoints, events, images, metrics.json")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"], "what to do")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in the job (multi-process)")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index (multi-process)")
_SOURCE = flags.DEFINE_string("source", None, "--mode sample: source image path")
_POSE = flags.DEFINE_string("pose", None, "--mode sample: target pose (keypoint file or image)")
_OUTPUT = flags.DEFINE_string("output", None, "--mode sample: where to write the result")
flags.mark_flags_as_required(["config", "workdir"])

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped early with a checkpoint saved; the same command resumes


def _load_config_file(spec: str):
    """The config named by ``--config`` (for error messages only; absl loads the real one)."""
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_ptx_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def _keys_near(argv: list[str]) -> str:
    """For each ``--config.a.b=...`` override that names a missing key: the valid keys at that level."""
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if spec is None and "--config" in argv:
        spec = argv[argv.index("--config") + 1]
    if spec is None:
        return ""
    try:
        config = _load_config_file(spec)
    except Exception:  # noqa: BLE001 - the original error is reported anyway
        return ""
    lines = []
    for a in argv:
        if not a.startswith("--config."):
            continue
        node, walked = config, []
        for key in a[len("--config.") :].split("=", 1)[0].split("."):
            base = key.split("[")[0]
            if not hasattr(node, "keys") or base not in node:
                where = ".".join(walked) or "<top>"
                valid = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else "(not a section)"
                lines.append(f"  {a.split('=')[0]}: no key {base!r} under {where}; valid keys: {valid}")
                break
            node, walked = node[base], [*walked, key]
            if "[" in key:
                node = node[int(key.split("[")[1].rstrip("]"))]
    return "\n".join(lines)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with the valid keys listed when a ``--config.`` override names a missing one."""
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError, ValueError, flags.Error) as e:
        hint = _keys_near(argv)
        message = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
        sys.stderr.write(
            f"FATAL flags error: {message}\n{hint}\n" if hint else f"FATAL flags error: {message}\n"
        )
        sys.exit(2)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from ptx.train import compile_env, distributed

    compile_env.enable_persistent_cache()
    distributed.maybe_initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from ptx.train import logging as tlog
    from ptx.train import loop

    config, workdir = _CONFIG.value, pathlib.Path(_WORKDIR.value)
    if _MODE.value == "train":
        tlog.write_config(config, workdir)
        result = loop.run(config, workdir)
        logging.info("%s at stage %s step %d", result.status, result.stage, result.stage_step)
        if result.status == "preempted":
            sys.exit(EXIT_PREEMPTED)
    elif _MODE.value == "eval":
        logging.info("metrics: %s", loop.evaluate(config, workdir))
    else:
        try:
            from ptx import api
        except ImportError as e:
            raise app.UsageError(f"--mode sample needs ptx.api, which is not importable: {e}") from e
        if not hasattr(api, "sample_cli"):
            raise app.UsageError(
                "--mode sample needs ptx.api.sample_cli(config, workdir, source, pose, output)"
            )
        api.sample_cli(config, workdir, source=_SOURCE.value, pose=_POSE.value, output=_OUTPUT.value)


def run_main() -> None:
    """Entry point of the ``ptx`` console script."""
    from ptx.train import compile_env

    compile_env.apply_xla_flags()  # before anything imports jax
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run_main()
