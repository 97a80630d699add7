"""Shared machinery of the PyTorch -> ptx weight converters.

A converter describes the mapping as a list of :class:`Rule` s (one per destination leaf: ptx variable path,
torch key, layout transform, optional alias keys that must hold the same tensor). :func:`apply_rules` runs
them, checks every shape against the ptx model's abstract variables, and reports missing torch keys,
unused torch keys, alias mismatches and ptx leaves no rule wrote, so a wrong mapping fails loudly.

Layouts (see ``ptx.nn.layers``): torch conv ``[out, in, kh, kw]`` -> ``(kh, kw, in, out)``; transposed conv
``[in, out, kh, kw]`` -> ``(kh, kw, in, out)``; linear ``[out, in]`` -> ``(in, out)``; vectors as they are.
Spectral norm: ``weight_orig`` -> ``params/.../kernel``, ``weight_u`` / ``weight_v`` -> ``spectral/.../u`` / ``v``.

Every ``ptx/convert/<method>.py`` offers ``ROLES`` ({command-line role: player}), ``convert(state_dicts, cfg=None)
-> (Config, {player: variables})``, ``export(cfg, players) -> {role: state dict}``, ``run_golden`` and ``cli``;
its ``cli`` is :func:`run_cli`, which writes :func:`write_converted`'s layout, read back by
:func:`read_converted` (and ``ptx.load``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import json
import os
import pathlib
import pickle
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ptx.errors import UserError  # noqa: F401 - the converters raise it from here

Path = tuple[str, ...]

LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "conv": lambda w: np.transpose(w, (2, 3, 1, 0)),
    "conv_t": lambda w: np.transpose(w, (2, 3, 0, 1)),
    "linear": lambda w: np.transpose(w, (1, 0)),
    "copy": lambda w: w,
}
INVERSE_LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "conv": lambda w: np.transpose(w, (3, 2, 0, 1)),
    "conv_t": lambda w: np.transpose(w, (2, 3, 0, 1)),
    "linear": lambda w: np.transpose(w, (1, 0)),
    "copy": lambda w: w,
}


class ConversionError(ValueError):
    """The weights do not fit the ptx model (the one-line message lists the problems found).

    ``role`` names the input at fault (e.g. ``"generator"``) so a command line can name its file.
    """

    def __init__(self, message: str, *, role: str | None = None):
        super().__init__(message)
        self.role = role


@dataclasses.dataclass(frozen=True)
class Rule:
    """Destination leaf ``dst`` (collection first, e.g. ``("params", "flow_net", "block0", "conv1", "kernel")``)
    <- torch key ``src`` through ``LAYOUTS[layout]``; ``aliases`` name the same tensor a second time."""

    dst: Path
    src: str
    layout: str = "copy"
    aliases: tuple[str, ...] = ()


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def conv_rules(
    dst: Path,
    src: str,
    *,
    bias: bool = True,
    transpose: bool = False,
    spectral: bool = False,
    aliases: Iterable[str] = (),
) -> list[Rule]:
    """A ``ptx.nn.layers`` Conv2d / ConvTranspose2d at module path ``dst`` from torch module ``src``."""
    layout = "conv_t" if transpose else "conv"
    aliases = tuple(aliases)
    weight = "weight_orig" if spectral else "weight"
    rules = [
        Rule(("params", *dst, "kernel"), join(src, weight), layout, tuple(join(a, weight) for a in aliases))
    ]
    if bias:
        rules.append(
            Rule(("params", *dst, "bias"), join(src, "bias"), "copy", tuple(join(a, "bias") for a in aliases))
        )
    if spectral:
        for leaf, key in (("u", "weight_u"), ("v", "weight_v")):
            rules.append(
                Rule(("spectral", *dst, leaf), join(src, key), "copy", tuple(join(a, key) for a in aliases))
            )
    return rules


def linear_rules(dst: Path, src: str, *, bias: bool = True) -> list[Rule]:
    """A ``ptx.nn.layers.Dense`` from a torch ``nn.Linear``."""
    rules = [Rule(("params", *dst, "kernel"), join(src, "weight"), "linear")]
    if bias:
        rules.append(Rule(("params", *dst, "bias"), join(src, "bias")))
    return rules


def norm_rules(dst: Path, src: str, *, running_stats: bool = False) -> list[Rule]:
    """An affine InstanceNorm / BatchNorm (``weight`` -> ``scale``); batch-norm running statistics optional."""
    rules = [
        Rule(("params", *dst, "scale"), join(src, "weight")),
        Rule(("params", *dst, "bias"), join(src, "bias")),
    ]
    if running_stats:
        rules += [
            Rule(("batch_stats", *dst, "mean"), join(src, "running_mean")),
            Rule(("batch_stats", *dst, "var"), join(src, "running_var")),
        ]
    return rules


def flatten(tree: Mapping[str, Any], prefix: Path = ()) -> dict[Path, Any]:
    """Nested dicts -> {path tuple: leaf}."""
    out: dict[Path, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, (*prefix, str(key))))
        else:
            out[(*prefix, str(key))] = value
    return out


def unflatten(flat: Mapping[Path, Any]) -> dict[str, Any]:
    """{path tuple: leaf} -> nested dicts."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


@dataclasses.dataclass
class Report:
    """What a conversion did not match; empty lists mean an exact, complete mapping."""

    missing: list[str] = dataclasses.field(default_factory=list)  # torch keys the rules need but absent
    unused: list[str] = dataclasses.field(default_factory=list)  # torch keys no rule read
    alias_mismatch: list[str] = dataclasses.field(default_factory=list)
    shape_errors: list[str] = dataclasses.field(default_factory=list)
    unwritten: list[str] = dataclasses.field(default_factory=list)  # ptx leaves no rule wrote

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unused or self.alias_mismatch or self.shape_errors or self.unwritten)

    def describe(self, limit: int = 12) -> str:
        lines = []
        for field in dataclasses.fields(self):
            items = getattr(self, field.name)
            if items:
                shown = "\n    ".join(items[:limit]) + (
                    f"\n    ... ({len(items) - limit} more)" if len(items) > limit else ""
                )
                lines.append(f"  {field.name} ({len(items)}):\n    {shown}")
        return "\n".join(lines) or "  (no problems)"

    def summary(self, limit: int = 3) -> str:
        """The problems on one line: ``missing (2): a, b; unused (1): c``."""
        parts = []
        for field in dataclasses.fields(self):
            items = getattr(self, field.name)
            if items:
                more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
                parts.append(f"{field.name} ({len(items)}): {', '.join(items[:limit])}{more}")
        return "; ".join(parts) or "no problems"


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in np.shape(x)) if not hasattr(x, "shape") else tuple(int(d) for d in x.shape)


def apply_rules(
    state_dict: Mapping[str, Any],
    rules: Iterable[Rule],
    *,
    expected: Mapping[str, Any] | None = None,
    ignore: Callable[[str], bool] | None = None,
    strict: bool = True,
    what: str = "state dict",
    dtype: np.dtype | None = np.float32,
) -> tuple[dict[str, Any], Report]:
    """Run ``rules`` over ``state_dict`` -> (nested ptx variables, report).

    ``expected``: the ptx variables (arrays or ``jax.ShapeDtypeStruct`` from ``jax.eval_shape``) whose
    leaves must all be written with these exact shapes. ``ignore(key)`` marks torch keys that may stay
    unused (e.g. ``num_batches_tracked``). With ``strict`` any problem raises :class:`ConversionError`
    naming ``what``. Aliases are compared elementwise (they must be the same tensor).
    """
    report = Report()
    exp = {path: _shape(v) for path, v in flatten(expected).items()} if expected is not None else None
    out: dict[Path, np.ndarray] = {}
    used: set[str] = set()
    for rule in rules:
        if rule.src not in state_dict:
            report.missing.append(rule.src)
            continue
        value = np.asarray(state_dict[rule.src])
        used.add(rule.src)
        for alias in rule.aliases:
            if alias not in state_dict:
                continue  # an alias is a second name: a file that kept only one is fine
            used.add(alias)
            other = np.asarray(state_dict[alias])
            if other.shape != value.shape or not np.array_equal(other, value):
                report.alias_mismatch.append(f"{alias} != {rule.src}")
        converted = LAYOUTS[rule.layout](value)
        if dtype is not None and np.issubdtype(converted.dtype, np.floating):
            converted = converted.astype(dtype, copy=False)
        if exp is not None:
            want = exp.get(rule.dst)
            if want is None:
                report.shape_errors.append(f"{rule.src} -> {'/'.join(rule.dst)}: no such ptx variable")
                continue
            if converted.shape != want:
                report.shape_errors.append(
                    f"{rule.src} {tuple(value.shape)} -> {'/'.join(rule.dst)}: got {converted.shape}, ptx expects {want}"
                )
                continue
        out[rule.dst] = np.array(converted, order="C", copy=True)  # never alias the caller's buffers
    report.unused = sorted(k for k in state_dict if k not in used and not (ignore and ignore(k)))
    if exp is not None:
        report.unwritten = ["/".join(p) for p in exp if p not in out]
    if strict and not report.ok:
        raise ConversionError(
            f"{what} does not match the ptx model: {report.summary()}; expected every key used once, "
            "none missing, shapes as the model's"
        )
    return unflatten(out), report


def export_state_dict(variables: Mapping[str, Any], rules: Iterable[Rule]) -> dict[str, np.ndarray]:
    """The inverse of :func:`apply_rules`: ptx variables -> a torch-named state dict (aliases included).

    Used to test converters on synthetic checkpoints and to hand ptx weights back to the original code.
    """
    flat = flatten(variables)
    out: dict[str, np.ndarray] = {}
    for rule in rules:
        if rule.dst not in flat:
            raise ConversionError(f"ptx variables have no {'/'.join(rule.dst)} (needed for {rule.src})")
        value = np.ascontiguousarray(INVERSE_LAYOUTS[rule.layout](np.asarray(flat[rule.dst])))
        for key in (rule.src, *rule.aliases):
            out[key] = value
    return out


def count_prefix(state_dict: Mapping[str, Any], prefix: str) -> int:
    """Number of consecutive indices i with some key starting ``{prefix}{i}.`` (e.g. ``encoder`` -> 2)."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in state_dict):
        n += 1
    return n


def shape_of(state_dict: Mapping[str, Any], key: str, what: str = "state dict") -> tuple[int, ...]:
    """Shape of ``state_dict[key]`` with an error naming the file when the key is absent."""
    if key not in state_dict:
        raise ConversionError(f"{what}: expected a key {key!r}; keys start with {sorted(state_dict)[:5]}")
    return _shape(state_dict[key])


@contextlib.contextmanager
def role_errors(role: str) -> Iterator[None]:
    """ConversionErrors raised inside name ``role`` when they name none (a command line then names its file)."""
    try:
        yield
    except ConversionError as e:
        e.role = e.role or role
        raise


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drops the ``module.`` prefix ``nn.DataParallel`` adds to every key (files saved from a wrapped net)."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def is_bookkeeping(key: str) -> bool:
    """Torch buffers no ptx variable holds (batch norm's step counter)."""
    return key.endswith("num_batches_tracked")


def require_config(given: Any, inferred: Any, *, what: str, role: str | None = None) -> None:
    """Raise a ConversionError naming every field where the weights' ``inferred`` config differs from the
    ``given`` one (both dataclasses of one type; fields the weights cannot tell must come out equal because
    inference takes them from ``given``)."""
    diff = [
        f"{f.name}: config {getattr(given, f.name)!r}, weights {getattr(inferred, f.name)!r}"
        for f in dataclasses.fields(given)
        if getattr(given, f.name) != getattr(inferred, f.name)
    ]
    if diff:
        raise ConversionError(
            f"{what} does not match the given config: {', '.join(diff)}; expected weights of that config",
            role=role,
        )


# ----------------------------------------------------------------------------------------------------------
# The one output layout of every converter: DIR is an Orbax checkpoint of {player: variables} (what
# ``config.init_from`` and ``ptx.load`` read) with DIR/ptx_convert.json beside its own files.

FORMAT_VERSION = 1
META_FILE = "ptx_convert.json"


class OutputDirError(FileExistsError):
    """The output directory cannot be written (not empty, not a directory)."""


def check_output_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> pathlib.Path:
    """``out_dir`` as an absolute path if a conversion may be written there, else an OutputDirError: it must be
    absent or empty, or with ``overwrite`` an earlier conversion (overwrite never deletes other files)."""
    out = pathlib.Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{out}: is a file; expected a directory to create")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputDirError(
                f"{out}: is not empty; expected an absent or empty directory (--overwrite replaces an "
                "earlier conversion)"
            )
        if not (out / META_FILE).is_file():
            raise OutputDirError(
                f"{out}: is not empty and holds no {META_FILE}; expected an earlier ptx.convert output "
                "(overwrite never deletes other files)"
            )
    return out


def write_converted(
    out_dir: str | os.PathLike,
    method: str,
    cfg: Any,
    players: Mapping[str, Mapping[str, Any]],
    *,
    overwrite: bool = False,
    extra: Mapping[str, Any] | None = None,
    fields_not_in_weights: Iterable[str] = (),
) -> pathlib.Path:
    """Write converted weights as ``out_dir`` (Orbax ``{player: variables}``) plus ``out_dir/ptx_convert.json``
    (format version, method, players, ``cfg`` as a dict, ``extra``). Returns the absolute directory.

    ``cfg`` is the method's model Config dataclass the weights fit. ``fields_not_in_weights`` names its fields
    the weights cannot tell (e.g. an activation); a loader takes those from its own config when it sets them.
    A non-empty ``out_dir`` is refused unless ``overwrite``, which replaces only an earlier conversion (a
    directory holding ptx_convert.json). The output appears whole or not at all: it is written beside
    ``out_dir`` and renamed into place.
    """
    from ptx.train import checkpoint

    out = check_output_dir(out_dir, overwrite)
    unknown = sorted(set(fields_not_in_weights) - {f.name for f in dataclasses.fields(cfg)})
    if unknown:
        raise ValueError(f"fields_not_in_weights {unknown} are not fields of {type(cfg).__name__}")
    meta = {
        "format": FORMAT_VERSION,
        "method": method,
        "players": sorted(players),
        "model": dataclasses.asdict(cfg),
        "fields_not_in_weights": sorted(fields_not_in_weights),
        "extra": dict(extra or {}),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.incomplete-", dir=out.parent))
    try:
        staged = work / "new"
        checkpoint.save_params(
            staged, {p: {c: _numpy_tree(t) for c, t in v.items()} for p, v in players.items()}
        )
        (staged / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        if out.exists():
            out.rename(work / "old")  # an empty directory or the earlier conversion; deleted below
        staged.rename(out)
    except BaseException:
        if (work / "old").exists() and not out.exists():
            (work / "old").rename(out)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _numpy_tree(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {str(k): _numpy_tree(v) for k, v in tree.items()}
    return np.asarray(tree)


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the Config dataclasses hold (hashable, as flax module fields must be)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def read_convert_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed ``ptx_convert.json`` of a converted directory (model lists as tuples), or None if the
    directory has none. A file of another format version raises a one-line ValueError."""
    file = pathlib.Path(path).expanduser().absolute() / META_FILE
    if not file.is_file():
        return None
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{file}: is not readable JSON ({e}); expected what python -m ptx.convert writes"
        ) from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(
            f"{file}: format {found!r}; expected format {FORMAT_VERSION} (re-run python -m ptx.convert on the "
            "original weights)"
        )
    missing = sorted({"method", "players", "model"} - set(meta))
    if missing:
        raise ValueError(f"{file}: lacks {missing}; expected what python -m ptx.convert writes")
    meta["model"] = _tuples(meta["model"])
    meta.setdefault("fields_not_in_weights", [])
    return meta


def read_converted(path: str | os.PathLike) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A ``write_converted`` directory -> (method, model Config as a dict, {player: variables} as numpy)."""
    from ptx.train import checkpoint

    meta = read_convert_meta(path)
    if meta is None:
        raise FileNotFoundError(
            f"{pathlib.Path(path).absolute()}: has no {META_FILE}; expected a directory written by "
            "python -m ptx.convert"
        )
    players = checkpoint.load_params(path)
    if sorted(players) != sorted(meta["players"]):
        raise ValueError(
            f"{path}: holds players {sorted(players)} but {META_FILE} lists {meta['players']}; expected one "
            "conversion per directory"
        )
    return meta["method"], meta["model"], players


# ----------------------------------------------------------------------------------------------------------
# The command line every converter shares: ``python -m ptx.convert <method> --<role> FILE ... --out DIR``.


def model_config_from_file(spec: str, config_class: type, method: str) -> Any:
    """``config.model`` of a ptx config file (``file.py`` or ``file.py:variant,...``) as ``config_class``."""
    import importlib.util

    file, _, arg = spec.partition(":")
    if not pathlib.Path(file).is_file():
        raise UserError(
            file, f"does not exist; expected a ptx config file such as configs/{method}_fashion.py"
        )
    try:
        module_spec = importlib.util.spec_from_file_location("_ptx_convert_config", file)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        config = module.get_config(arg or None)
    except Exception as e:  # a config file is the user's code: any failure is about that file
        raise UserError(file, f"could not build its config ({type(e).__name__}: {e})") from e
    if config.get("method") != method:
        raise UserError(file, f"is a {config.get('method')!r} config; expected a {method} config")
    try:
        return config_class(**config.model.to_dict())
    except (TypeError, ValueError) as e:
        raise UserError(file, f"config.model is not a {method} model config ({e})") from e


def _parse_sets(items: Iterable[str], config_class: type) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(config_class)}
    out = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or key not in fields:
            raise UserError(f"--set {item}", f"expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def run_cli(
    argv: Sequence[str] | None,
    *,
    method: str,
    roles: Mapping[str, str],
    convert: Callable[..., tuple[Any, dict[str, Any]]],
    config_class: type,
    doc: str | None = None,
    required: Sequence[str] = ("generator",),
    fields_not_in_weights: Iterable[str] = (),
    read: Callable[[str], Mapping[str, Any]] | None = None,
) -> int:
    """``python -m ptx.convert <method>``: one ``--<role> FILE`` per entry of ``roles``, ``--out DIR``,
    ``--overwrite``, ``--config file.py[:variant]`` (check the weights against it), ``--set FIELD=VALUE``
    (model Config fields the weights cannot tell), ``--debug``. Runs ``convert({role: state dict}, cfg)`` and
    ``write_converted``. ``read(file)`` turns one file into a state dict (default: the ``.pth`` reader; Def-GAN
    also reads Keras ``.h5``). A wrong input prints one line ``error: FILE: what is wrong; what was expected``
    and returns 2 (the traceback only with ``--debug``)."""
    ap = argparse.ArgumentParser(
        prog=f"python -m ptx.convert {method}",
        description=(doc or "").strip().split("\n\n")[0] or None,
    )
    for role, player in roles.items():
        ap.add_argument(
            f"--{role.replace('_', '-')}",
            dest=role,
            metavar="FILE",
            required=role in required,
            help=f"the original's {role.replace('_', ' ')} weights (.pth) -> ptx player {player!r}",
        )
    ap.add_argument("--out", required=True, metavar="DIR", help="output directory (absent or empty)")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier conversion in --out")
    ap.add_argument(
        "--config", metavar="FILE.py[:ARGS]", help="ptx config whose model the weights must match"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a model Config field the weights cannot tell (e.g. padding_type=replicate)",
    )
    ap.add_argument("--debug", action="store_true", help="tracebacks for input errors")
    args = ap.parse_args(argv)
    files = {role: getattr(args, role) for role in roles if getattr(args, role)}
    if not files:
        ap.error(f"give at least one of {', '.join('--' + r.replace('_', '-') for r in roles)}")
    try:
        cfg, players = _convert_files(args, files, method, convert, config_class, read)
        try:
            out = write_converted(
                args.out,
                method,
                cfg,
                players,
                overwrite=args.overwrite,
                fields_not_in_weights=fields_not_in_weights,
            )
        except OutputDirError as e:
            raise UserError(pathlib.Path(args.out).expanduser().absolute(), str(e)) from e
    except UserError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    sizes = ", ".join(
        f"{p} ({sum(int(np.size(x)) for x in flatten(v.get('params', {})).values()):,} parameters)"
        for p, v in sorted(players.items())
    )
    print(f"wrote {out}: {sizes}; model config in {out / META_FILE}")
    return 0


def _convert_files(
    args, files: Mapping[str, str], method: str, convert, config_class, read=None
) -> tuple[Any, dict]:
    """Read each role's file and convert them together, turning input errors into UserErrors."""
    from ptx.convert import torch_io

    read = read or torch_io.load_state_dict

    try:
        check_output_dir(args.out, args.overwrite)  # before reading gigabytes of weights
    except OutputDirError as e:
        raise UserError(pathlib.Path(args.out).expanduser().absolute(), str(e)) from e
    cfg = model_config_from_file(args.config, config_class, method) if args.config else None
    sets = _parse_sets(args.set, config_class)
    state_dicts = {}
    for role, file in files.items():
        try:
            state_dicts[role] = read(file)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ImportError) as e:
            raise UserError(file, f"{e}; expected the original's {role} weights") from e

    def run(cfg):
        try:
            return convert(state_dicts, cfg)
        except (ConversionError, ValueError) as e:
            role = getattr(e, "role", None)
            raise UserError(files[role] if role in files else ", ".join(files.values()), str(e)) from e

    if sets:
        base = cfg if cfg is not None else run(None)[0]  # the weights' own config, then the user's fields
        try:
            cfg = dataclasses.replace(base, **sets)
        except (TypeError, ValueError) as e:
            raise UserError("--set " + " ".join(args.set), str(e)) from e
    return run(cfg)
