"""Command line: train, evaluate or sample with a config file. No logic here; see ``ptx.train.loop``.

    python -m ptx.main --config configs/gfla_fashion.py:demo --workdir /tmp/gfla
    python -m ptx.main --config configs/toy_puppets.py:tiny --workdir /tmp/toy --config.optim.gen.lr=1e-3
    python -m ptx.main --config configs/gfla_fashion.py --workdir /tmp/gfla --mode eval
    python -m ptx.main --config gfla_fashion:demo --workdir /tmp/gfla      (by name: works from an installed wheel)

Exit status: 0 when every stage finished, ``EXIT_PREEMPTED`` (75, EX_TEMPFAIL) when a SIGTERM or a preemption
notice stopped the run after saving a checkpoint (run the same command again to resume; ``launch/slurm_gpu.sbatch``
requeues on it), 2 for a usage error. Only training writes the run's ``config.json``: ``--mode eval`` and
``--mode sample`` read a workdir without rewriting its record.

``--config`` takes a config file's path or the name of one shipped with ptx (``ptx.list_models()``). A training
run ends with a summary (``ptx.train.summary``: held-out scores beside baselines, a grid, ``report.html``) and
closes with the paths and the command to sample from it. Other libraries' INFO lines (Orbax, grain, TFDS) are
hidden unless ``--verbose`` (or absl's ``-v 1``) is given.

Configs are locked: ``--config.key=value`` with a key the config lacks fails and lists the valid keys. Multi-host
runs (``launch/``) are joined with ``jax.distributed`` here, before anything touches a device. Compiled
programs are cached in ``$PTX_COMPILATION_CACHE`` (default ~/.cache/ptx/xla; empty disables), see
``ptx.train.compile_env``.
"""

from __future__ import annotations

import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from ptx import bundled

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "configs/<method>_<data>.py[:variant,switch=value], or a config's name (gfla_fashion:demo)",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory: checkpoints, events, images, metrics.json")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"], "what to do")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in the job (multi-process)")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index (multi-process)")
_SOURCE = flags.DEFINE_string("source", None, "--mode sample: source image path")
_POSE = flags.DEFINE_string("pose", None, "--mode sample: target pose (keypoint file or image)")
_OUTPUT = flags.DEFINE_string("output", None, "--mode sample: where to write the result")
_DEBUG = flags.DEFINE_bool("debug", False, "tracebacks for input errors (bad files, config values, weights)")
_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "also show other libraries' INFO lines (Orbax, grain, TFDS) in absl's full format"
)
flags.mark_flags_as_required(["config", "workdir"])

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped early with a checkpoint saved; the same command resumes


def _config_spec(argv: list[str]) -> str | None:
    """The value of ``--config`` in ``argv`` (``--config=X`` or ``--config X``), if any."""
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            return a.split("=", 1)[1]
        if a == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _config_args(argv: list[str]) -> list[str]:
    """The ``--config`` argument and ``--config.key=value`` overrides of ``argv``, in order (the sampling
    command a run prints repeats them)."""
    out, take_next = [], False
    for a in argv:
        if take_next:
            out.append(a)
            take_next = False
        elif a == "--config" or (a.startswith("--config.") and "=" not in a):
            out.append(a)
            take_next = True
        elif a.startswith(("--config=", "--config.")):
            out.append(a)
    return out


def _with_config_path(argv: list[str]) -> list[str]:
    """``--config NAME[:arg]`` (a config shipped with ptx) -> ``--config <its file>[:arg]`` for absl."""
    out = list(argv)
    for i, a in enumerate(out):
        if a.startswith("--config="):
            out[i] = "--config=" + bundled.resolve_config_spec(a.split("=", 1)[1])
        elif a == "--config" and i + 1 < len(out):
            out[i + 1] = bundled.resolve_config_spec(out[i + 1])
    return out


def _keys_near(argv: list[str]) -> str:
    """For each ``--config.a.b=...`` override that names a missing key: the valid keys at that level."""
    spec = _config_spec(argv)
    if spec is None:
        return ""
    try:
        config = bundled.load_config(spec)
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
                index = int(key.split("[")[1].rstrip("]"))
                if not -len(node) <= index < len(node):
                    lines.append(
                        f"  {a.split('=')[0]}: config.{base} has {len(node)} entries (0..{len(node) - 1})"
                    )
                    break
                node = node[index]
    return "\n".join(lines)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl parsing (a config named rather than a path is found among ptx's, its ``from configs import ...``
    lines mean the folder it lives in), with the valid keys listed when a ``--config.`` override names a
    missing one."""
    spec = _config_spec(argv)
    if spec is not None and (problem := bundled.unknown_config_message(bundled.resolve_config_spec(spec))):
        sys.stderr.write(f"FATAL flags error: {problem}\n")
        sys.exit(2)
    try:
        if spec is None:
            return flags.FLAGS(argv)
        with bundled.configs_package(bundled.config_file_folder(spec)):
            return flags.FLAGS(_with_config_path(argv))
    except (AttributeError, KeyError, IndexError, ValueError, flags.Error) as e:
        hint = _keys_near(argv)
        message = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
        sys.stderr.write(
            f"FATAL flags error: {message}\n{hint}\n" if hint else f"FATAL flags error: {message}\n"
        )
        sys.exit(2)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from ptx.errors import run_reporting_user_errors

    status = run_reporting_user_errors(_run, debug=_DEBUG.value)
    if status:
        sys.exit(status)


def _run() -> None:
    from ptx.train import compile_env, console, distributed

    console.configure(verbose=_VERBOSE.value)
    compile_env.enable_persistent_cache()
    distributed.maybe_initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from ptx.train import logging as tlog
    from ptx.train import loop, summary

    config, workdir = _CONFIG.value, pathlib.Path(_WORKDIR.value)
    if _MODE.value == "train":
        tlog.write_config(config, workdir)
        result = loop.run(config, workdir)
        logging.info("%s at stage %s step %d", result.status, result.stage, result.stage_step)
        if result.status == "preempted":
            sys.exit(EXIT_PREEMPTED)
        summary.print_closing(workdir, _config_args(sys.argv[1:]))
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
        out = api.sample_cli(config, workdir, source=_SOURCE.value, pose=_POSE.value, output=_OUTPUT.value)
        print(f"wrote {out}", flush=True)


def run_main() -> None:
    """Entry point of the ``ptx`` console script."""
    from ptx.train import compile_env

    compile_env.apply_xla_flags()  # before anything imports jax
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run_main()
