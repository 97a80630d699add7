"""Shared machinery of the PyTorch -> ptx weight converters.

A converter describes the mapping as a list of :class:`Rule` s (one per destination leaf: ptx variable path,
torch key, layout transform, optional alias keys that must hold the same tensor). :func:`apply_rules` runs
them, checks every shape against the ptx model's abstract variables, and reports missing torch keys,
unused torch keys, alias mismatches and ptx leaves no rule wrote, so a wrong mapping fails loudly.

Layouts (see ``ptx.nn.layers``): torch conv ``[out, in, kh, kw]`` -> ``(kh, kw, in, out)``; transposed conv
``[in, out, kh, kw]`` -> ``(kh, kw, in, out)``; linear ``[out, in]`` -> ``(in, out)``; vectors as they are.
Spectral norm: ``weight_orig`` -> ``params/.../kernel``, ``weight_u`` / ``weight_v`` -> ``spectral/.../u`` / ``v``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

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
    """The state dict does not fit the ptx model (message lists every problem found)."""


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
        raise ConversionError(f"{what} does not match the ptx model:\n{report.describe()}")
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
