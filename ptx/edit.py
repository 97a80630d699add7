"""Region editing of people (CASD): garment try-on, head swap, interpolation between two people.

    import ptx

    ptx.edit("me.jpg", regions={"upper_clothes": "model.jpg"}, checkpoint=DIR)  # try on model.jpg's top
    ptx.edit("me.jpg", regions={"head": "you.jpg"}, pose="walk.json", checkpoint=DIR)  # head swap, new pose
    ptx.edit("me.jpg", mix=("you.jpg", [0, 0.25, 0.5, 0.75, 1]), checkpoint=DIR)  # (5, H, W, 3) strip

    python -m ptx.edit --checkpoint DIR --person me.jpg --region upper_clothes=model.jpg --out tryon.png
    python -m ptx.edit --checkpoint DIR --person me.jpg --mix you.jpg --steps 5 --out strip.png

A model with the ``EDIT_REGIONS`` capability (``ptx.methods.protocol``) describes a person by one style code per
body region, pooled from a photo over its human parsing, and renders any set of codes in any pose. Editing
replaces rows of the person's codes by another photo's (``regions=``), or interpolates them towards another
person's (``mix=``), then renders. Region names are words: the model's regions (CASD: ``ptx.data.parsing.
CASD_REGIONS``) and its named groups (``head`` = hair + face, ``clothes`` = upper + lower clothes).

People: a photo (path, PIL image or array) of any size, its keypoints (18x2 (y, x), OpenPose JSON or a CSV row;
they place the person in the model's frame, as in ``ptx.sample``, and are the output pose when ``pose=None``) and
its LIP parsing map (uint8 labels 0..19 in the photo's pixels; other labels belong to no region, as in the
original). ptx estimates neither: pass them (``person_pose=``, ``person_parsing=``, or a :class:`Person` for the
other photos) or put them beside a photo file as sidecars (:data:`POSE_SIDECARS`, :data:`PARSING_SIDECARS`). A
photo without keypoints is padded whole to the frame; a photo without parsing is an error, since the codes come
from it.

The model runs in chunks of exactly ``batch_size`` images (padded; one compiled program for every call), and
CASD's sampler normalises per sample, so an image does not depend on what else a call renders: with the default
``batch_size=1``, ``mix`` at t = 0 and t = 1 gives, bit for bit, the plain renderings of the two people.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ptx import api
from ptx.data import framing as framing_lib
from ptx.data import poses as poses_lib
from ptx.methods.protocol import EDIT_REGIONS, PlayerVariables

# Files looked for beside a photo ``dir/name.ext`` when its keypoints / parsing are not given.
POSE_SIDECARS = ("{stem}.json", "{stem}_keypoints.json", "{stem}.csv")
PARSING_SIDECARS = ("{stem}_parsing.png", "{stem}_parsing.npy", "../semantic_merge3/{stem}.png")
# A colour per region for pictures of parsing maps (background white; cycled past 8 regions).
REGION_PALETTE = np.array(
    [[255, 255, 255], [40, 60, 160], [90, 50, 20], [230, 200, 0], [250, 180, 150], [200, 30, 40],
     [120, 200, 90], [60, 160, 200]],
    np.uint8,
)  # fmt: skip


@runtime_checkable
class RegionEditor(Protocol):
    """What ``ptx.edit`` uses of a recipe that declares ``EDIT_REGIONS``."""

    region_names: tuple[str, ...]  # row k of the style codes is region region_names[k]
    region_groups: Mapping[str, tuple[str, ...]]  # named sets of regions, e.g. {"head": ("hair", "face")}

    def encode_styles(self, variables: PlayerVariables, batch: Mapping[str, Any]) -> Any:
        """(B, K, D) codes of ``source_image`` (uint8) with its ``source_parsing`` (uint8 LIP labels)."""
        ...

    def decode_with_styles(
        self, variables: PlayerVariables, styles: Any, batch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``predict``'s outputs ({image, parsing, ...}) for codes ``styles`` in ``target_keypoints``."""
        ...


@dataclasses.dataclass(frozen=True)
class Person:
    """A photo and what editing reads from it; a ``None`` field is looked for beside a photo file."""

    image: api.ImageLike
    pose: Any = None
    parsing: Any = None


@dataclasses.dataclass(frozen=True)
class Framed:
    """A person in the model's frame: image (h, w, 3), parsing (h, w) LIP labels, keypoints or None."""

    image: np.ndarray
    parsing: np.ndarray
    keypoints: np.ndarray | None
    framing: framing_lib.Framing
    photo: np.ndarray


# ------------------------------------------------------------------------------------------ reading people


def _sidecar(image: Any, patterns: Sequence[str]) -> pathlib.Path | None:
    if not isinstance(image, str | os.PathLike):
        return None
    path = pathlib.Path(image)
    for pattern in patterns:
        candidate = path.parent / pattern.format(stem=path.stem)
        if candidate.is_file():
            return candidate
    return None


def read_parsing(src: Any, size: tuple[int, int], *, what: str = "parsing") -> np.ndarray:
    """A LIP label map (``.png`` / ``.npy`` file or array, HxW) -> uint8 (h, w) = ``size``.

    A map of another size is taken to cover the whole photo (as CASD's squashed 256x256 maps do) and resized
    with nearest labels. Labels outside 0..19 are kept (they belong to no region)."""
    if isinstance(src, str | os.PathLike):
        path = pathlib.Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"{what}: parsing file {path} does not exist")
        if path.suffix.lower() == ".npy":
            src = np.load(path)
        else:
            try:
                with Image.open(path) as im:
                    if im.mode in ("RGB", "RGBA"):
                        rgb = np.asarray(im.convert("RGB"))
                        if (rgb != rgb[..., :1]).any():
                            raise ValueError(
                                f"{what}: {path} is a colour picture; expected a label map (one LIP label "
                                "0..19 per pixel, a grey or palette PNG)"
                            )
                        src = rgb[..., 0]
                    else:
                        src = np.asarray(im)
            except OSError as e:
                raise ValueError(f"{what}: {path} is not a readable image ({e})") from e
    arr = np.asarray(src)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{what}: expected an HxW label map, got an array of shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.all(np.mod(arr, 1) == 0)):
        raise ValueError(f"{what}: expected integer labels, got {arr.dtype} values with fractions")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"{what}: labels must be 0..255 (LIP 0..19), got {arr.min()}..{arr.max()}")
    arr = arr.astype(np.uint8)
    if arr.shape != tuple(size):
        arr = np.asarray(Image.fromarray(arr).resize(size[::-1], Image.Resampling.NEAREST))
    return arr


def frame_parsing(parsing: np.ndarray, framing: framing_lib.Framing) -> np.ndarray:
    """A photo's label map in the model frame: the photo's crop/pad and resize, nearest, padding = background."""
    top, left, _, _ = framing.box
    sy, sx = framing.scale
    h, w = framing.model_size
    out = Image.fromarray(parsing).transform(
        (w, h),
        Image.Transform.AFFINE,
        (1 / sx, 0, left + 0.5 - 0.5 / sx, 0, 1 / sy, top + 0.5 - 0.5 / sy),  # as framing.fit_to_frame
        resample=Image.Resampling.NEAREST,
        fillcolor=0,
    )
    return np.asarray(out)


def _person(x: Any, what: str, pose: Any = None, parsing: Any = None) -> Person:
    person = x if isinstance(x, Person) else Person(x)
    return Person(
        person.image,
        pose if pose is not None else person.pose,
        parsing if parsing is not None else person.parsing,
    )


def _no_parsing(what: str) -> ValueError:
    hint = "person_parsing=" if what == "person" else "a ptx.edit.Person(photo, pose, parsing)"
    return ValueError(
        f"{what}: no parsing map given: pass {hint} (a LIP label map: uint8 HxW, labels 0..19, file or "
        f"array) or put NAME_parsing.png beside the photo; ptx does not estimate parsing"
    )


def colour_parsing(regions: np.ndarray) -> np.ndarray:
    """Region ids (..., H, W) -> an RGB picture (..., H, W, 3) with :data:`REGION_PALETTE`."""
    return REGION_PALETTE[np.asarray(regions) % len(REGION_PALETTE)]


# ------------------------------------------------------------------------------------------ editor


@dataclasses.dataclass(frozen=True)
class Mix:
    """Interpolation towards ``other``'s codes: ``(1 - t) * own + t * other`` per ``t``, over ``regions``
    (None: all)."""

    other: Any
    ts: tuple[float, ...]
    regions: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, mix: Any) -> Mix:
        if isinstance(mix, Mix):
            return mix
        if not isinstance(mix, tuple | list) or len(mix) not in (2, 3):
            raise ValueError(
                "mix: expected (other_person, ts) or (other_person, ts, region names), ts a list of floats "
                "or a number of evenly spaced steps from 0 to 1"
            )
        other, ts, *names = mix
        if isinstance(ts, int | np.integer):
            if ts < 2:
                raise ValueError(f"mix: {ts} steps; at least 2 (0 and 1)")
            ts = np.linspace(0.0, 1.0, int(ts))
        ts = tuple(float(t) for t in np.atleast_1d(np.asarray(ts, np.float64)))
        if not ts or not all(np.isfinite(ts)):
            raise ValueError(f"mix: the interpolation weights must be finite numbers, got {ts}")
        regions = (names[0],) if names and isinstance(names[0], str) else (tuple(names[0]) if names else None)
        return cls(other, ts, regions)


class Editor:
    """A region-editing model with its weights and jitted encode / render functions, reused across calls."""

    def __init__(
        self,
        method: Any,
        variables: PlayerVariables,
        image_size: tuple[int, int],
        frame_aspect: float,
        *,
        batch_size: int = 1,
    ):
        import jax

        if EDIT_REGIONS not in method.capabilities:
            raise ValueError(
                f"{type(method).__name__} cannot edit regions (no {EDIT_REGIONS!r} capability); models that "
                "can: casd_*"
            )
        self.method: RegionEditor = method
        self.variables = jax.device_put(variables)  # once, not per call
        self.image_size = tuple(int(s) for s in image_size)
        self.frame_aspect = float(frame_aspect)
        self.batch_size = int(batch_size)
        self.region_names = tuple(method.region_names)
        self.region_groups = {k: tuple(v) for k, v in method.region_groups.items()}
        self._encode = jax.jit(method.encode_styles)
        self._decode = jax.jit(method.decode_with_styles)

    # -- names --------------------------------------------------------------------------------------------

    def valid_names(self) -> str:
        groups = [f"{g} ({' + '.join(r)})" for g, r in self.region_groups.items()]
        return ", ".join([*self.region_names, *groups])

    def rows(self, name: str, what: str = "regions") -> tuple[int, ...]:
        """Code rows of a region or group name; a bad name lists the valid ones."""
        if name in self.region_names:
            return (self.region_names.index(name),)
        if name in self.region_groups:
            return tuple(self.region_names.index(r) for r in self.region_groups[name])
        raise ValueError(f"{what}: unknown region {name!r}; valid: {self.valid_names()}")

    # -- model-frame arrays -------------------------------------------------------------------------------

    def _chunks(self, fn, arrays: dict[str, np.ndarray]) -> list[Any]:
        """``fn(batch)`` over fixed-size chunks of ``arrays`` (the last one padded by repetition)."""
        import jax

        n = len(next(iter(arrays.values())))
        outs = []
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            pad = self.batch_size - (stop - start)
            batch = {
                k: np.concatenate([v[start:stop], np.repeat(v[stop - 1 : stop], pad, 0)])
                for k, v in arrays.items()
            }
            outs.append(jax.tree.map(lambda a, m=stop - start: np.asarray(a)[:m], fn(batch)))
        return outs

    def encode(self, images: np.ndarray, parsings: np.ndarray) -> np.ndarray:
        """uint8 (N, h, w, 3) model-frame images, uint8 (N, h, w) LIP labels -> float32 codes (N, K, D)."""
        outs = self._chunks(
            lambda b: self._encode(self.variables, b),
            {"source_image": np.asarray(images, np.uint8), "source_parsing": np.asarray(parsings, np.uint8)},
        )
        return np.concatenate(outs).astype(np.float32)

    def render(self, codes: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes (N, K, D) in model-frame poses (N, 18, 2) -> uint8 images (N, h, w, 3), region ids (N, h, w)."""
        codes = np.asarray(codes, np.float32)
        frame = np.zeros((len(codes), *self.image_size, 3), np.uint8)  # only its size is read

        def run(b):
            out = self._decode(self.variables, b["styles"], b)
            return out["image"], out["parsing"]

        outs = self._chunks(
            run,
            {"styles": codes, "source_image": frame, "target_keypoints": np.asarray(keypoints, np.float32)},
        )
        image = np.concatenate([o[0] for o in outs])
        image = np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)
        return image, np.concatenate([o[1] for o in outs]).astype(np.uint8)

    # -- people --------------------------------------------------------------------------------------------

    def frame(self, person: Any, what: str = "person", *, need_pose: bool = False) -> Framed:
        """Reads a person's photo, keypoints and parsing (arguments or sidecars) into the model frame."""
        person = _person(person, what)
        photo = api.read_image(person.image, what=what)
        pose = person.pose if person.pose is not None else _sidecar(person.image, POSE_SIDECARS)
        parsing = person.parsing if person.parsing is not None else _sidecar(person.image, PARSING_SIDECARS)
        if parsing is None:
            raise _no_parsing(what)
        if pose is None and need_pose:
            raise ValueError(
                f"{what}: pose=None keeps the person's own pose, which needs their keypoints: pass person_pose= "
                "(18x2 (y, x), OpenPose JSON or a CSV row) or put NAME.json beside the photo, or give pose="
            )
        kps = None if pose is None else poses_lib.read_pose(pose, frame=photo.shape[:2], what=f"{what} pose")
        image, model_kps, fr = framing_lib.fit_to_frame(photo, kps, self.image_size, aspect=self.frame_aspect)
        labels = frame_parsing(read_parsing(parsing, photo.shape[:2], what=f"{what} parsing"), fr)
        return Framed(image, labels, model_kps, fr, photo)

    def target_keypoints(self, pose: Any, person: Framed, pose_frame: str = "photo") -> np.ndarray:
        """``pose`` in the model frame; None = the person's own; ``pose_frame`` as ``ptx.sample``."""
        if pose is None:
            return person.keypoints
        if pose_frame == "model":
            return poses_lib.read_pose(pose, frame=self.image_size, what="pose")
        if pose_frame != "photo":
            raise ValueError(f"pose_frame={pose_frame!r}; expected 'photo' or 'model'")
        return person.framing.to_model(poses_lib.read_pose(pose, what="pose"))

    def style_codes(self, person: Framed, regions: Mapping[str, Any] | None = None) -> np.ndarray:
        """The person's codes (K, D) with the rows of ``regions`` ({name: other person}) taken from the others'
        codes (one batch for everyone)."""
        regions = dict(regions or {})
        owner: dict[int, str] = {}
        for name in regions:
            for row in self.rows(name):
                if row in owner:
                    raise ValueError(
                        f"regions: {self.region_names[row]!r} is set by both {owner[row]!r} and {name!r}"
                    )
                owner[row] = name
        others = {name: self.frame(p, f"regions[{name!r}]") for name, p in regions.items()}
        people = [person, *others.values()]
        codes = self.encode(np.stack([p.image for p in people]), np.stack([p.parsing for p in people]))
        edited = codes[0].copy()
        for i, name in enumerate(others, start=1):
            rows = list(self.rows(name))
            edited[rows] = codes[i][rows]
        return edited

    def __call__(
        self,
        person: Any,
        *,
        pose: Any = None,
        regions: Mapping[str, Any] | None = None,
        mix: Any = None,
        person_pose: Any = None,
        person_parsing: Any = None,
        return_parsing: bool = False,
        output: str = "model",
        pose_frame: str = "photo",
    ):
        """The edited person as uint8 (h, w, 3), or (N, h, w, 3) with ``mix``; with ``return_parsing`` also the
        predicted target regions (uint8 (h, w) / (N, h, w) region ids, model frame). ``output="photo"`` pastes
        the images back into the person's photo."""
        if output not in ("model", "photo"):
            raise ValueError(f"output={output!r}; expected 'model' or 'photo'")
        for name in regions or {}:
            self.rows(name)  # names first: a typo fails before any photo is read
        mix = None if mix is None else Mix.parse(mix)
        mix_rows = list(range(len(self.region_names)))
        if mix is not None and mix.regions is not None:
            mix_rows = sorted({r for name in mix.regions for r in self.rows(name, "mix")})
        me = self.frame(_person(person, "person", person_pose, person_parsing), need_pose=pose is None)
        target = self.target_keypoints(pose, me, pose_frame)
        codes = self.style_codes(me, regions)
        if mix is None:
            batch = codes[None]
        else:
            other = self.frame(mix.other, "mix")
            theirs = self.encode(other.image[None], other.parsing[None])[0]
            batch = np.repeat(codes[None], len(mix.ts), 0)
            for i, t in enumerate(mix.ts):
                batch[i, mix_rows] = np.float32(1.0 - t) * codes[mix_rows] + np.float32(t) * theirs[mix_rows]
        images, parsing = self.render(batch, np.repeat(target[None], len(batch), 0))
        if output == "photo":
            images = np.stack([framing_lib.paste_back(im, me.framing, me.photo) for im in images])
        if mix is None:
            images, parsing = images[0], parsing[0]
        return (images, parsing) if return_parsing else images


# ------------------------------------------------------------------------------------------ loading


def _restore_dropped_collections(sampler: api.Sampler, checkpoint: Any, model: str) -> PlayerVariables:
    """The sampler's variables with the generator's ``vgg`` collection back if the Sampler dropped it.

    ``ptx.api.Sampler`` once dropped every ``vgg`` collection as training-only; CASD's style encoder reads its
    VGG19 from there. Take it from the checkpoint (or draw it for ``"random"``); a no-op where it is kept."""
    gen = sampler.method.generator
    variables = dict(sampler.variables)
    if "vgg" in variables[gen]:
        return variables
    import jax

    if str(checkpoint) == "random":
        h, w = sampler.image_size
        kps = np.full((1, 18, 2), -1.0, np.float32)
        kps[:, :2] = [[h * 0.2, w * 0.5], [h * 0.3, w * 0.5]]
        zeros = np.zeros((1, h, w, 3), np.uint8)
        batch = {"source_image": zeros, "target_image": zeros, "source_keypoints": kps, "target_keypoints": kps,
                 "source_parsing": zeros[..., 0], "target_parsing": zeros[..., 0]}  # fmt: skip
        shapes = jax.eval_shape(lambda k: sampler.method.init(k, batch), jax.random.key(0))[gen]
        if "vgg" not in shapes:
            return variables
        rng = np.random.default_rng(0)
        vgg = jax.tree_util.tree_map_with_path(
            lambda p, s: (
                np.zeros(s.shape, s.dtype)
                if str(getattr(p[-1], "key", "")) == "bias"
                else (rng.standard_normal(s.shape) * 0.02).astype(s.dtype)
            ),
            shapes["vgg"],
        )
    else:
        path = checkpoint if checkpoint is not None else pathlib.Path(os.environ[api.CHECKPOINT_ENV]) / model
        stored = api.load_variables(path)[0].get(gen, {})
        if "vgg" not in stored:
            return variables
        vgg = stored["vgg"]
    variables[gen] = {**variables[gen], "vgg": vgg}
    return variables


def load(
    model: str = "casd_fashion",
    checkpoint: str | os.PathLike | None = None,
    *,
    variant: str = "paper",
    batch_size: int = 1,
) -> Editor:
    """A reusable editor; ``model``, ``checkpoint`` and ``variant`` as ``ptx.load``."""
    sampler = api.load(model, checkpoint, variant=variant)
    variables = _restore_dropped_collections(sampler, checkpoint, model)
    return Editor(sampler.method, variables, sampler.image_size, sampler.frame_aspect, batch_size=batch_size)


@functools.lru_cache(maxsize=4)
def _cached_editor(model: str, checkpoint: str | None, variant: str) -> Editor:
    return load(model, checkpoint, variant=variant)


def edit(
    person: Any,
    *,
    pose: Any = None,
    regions: Mapping[str, Any] | None = None,
    mix: Any = None,
    model: str = "casd_fashion",
    checkpoint: str | os.PathLike | None = None,
    person_pose: Any = None,
    person_parsing: Any = None,
    return_parsing: bool = False,
    output: str = "model",
    pose_frame: str = "photo",
    variant: str = "paper",
):
    """``person`` (a photo or :class:`Person`) with the regions of ``regions`` ({name: other photo or Person})
    taken from other people, or a strip interpolating towards ``mix=(other, ts[, region names])``, in ``pose``
    (None: the person's own). Editors are cached per model / checkpoint / variant. See :meth:`Editor.__call__`."""
    editor = _cached_editor(model, None if checkpoint is None else str(checkpoint), variant)
    return editor(
        person,
        pose=pose,
        regions=regions,
        mix=mix,
        person_pose=person_pose,
        person_parsing=person_parsing,
        return_parsing=return_parsing,
        output=output,
        pose_frame=pose_frame,
    )


# ------------------------------------------------------------------------------------------ command line


def _strip(images: np.ndarray) -> np.ndarray:
    return images if images.ndim == 3 else np.concatenate(list(images), axis=1)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m ptx.edit",
        description="Edit a person's regions (try-on, head swap) or interpolate towards another person. "
        "Each photo's keypoints and LIP parsing come from sidecar files (NAME.json, NAME_parsing.png) unless "
        "given for the person.",
    )
    ap.add_argument("--model", default="casd_fashion", help="config name (see ptx.list_models())")
    ap.add_argument("--checkpoint", required=True, help="training workdir, ptx.convert output, or 'random'")
    ap.add_argument("--variant", default="paper", help="config variant when the checkpoint records none")
    ap.add_argument("--person", required=True, help="the person's photo")
    ap.add_argument("--person-pose", help="keypoints of the person's photo (default: sidecar)")
    ap.add_argument("--person-parsing", help="LIP parsing of the person's photo (default: sidecar)")
    ap.add_argument("--pose", help="target pose file (default: the person's own pose)")
    ap.add_argument("--pose-frame", choices=("photo", "model"), default="photo")
    ap.add_argument(
        "--region", action="append", default=[], metavar="NAME=PHOTO", help="take region NAME from PHOTO"
    )
    ap.add_argument("--mix", metavar="PHOTO", help="interpolate towards the person of PHOTO")
    ap.add_argument("--steps", type=int, default=5, help="--mix: evenly spaced weights from 0 to 1")
    ap.add_argument("--t", help="--mix: comma-separated weights instead of --steps, e.g. 0,0.5,1")
    ap.add_argument("--mix-regions", help="--mix: comma-separated region names (default: all)")
    ap.add_argument("--out", required=True, help="output .png (with --mix: the frames side by side)")
    ap.add_argument("--parsing-out", help="also write the predicted target parsing as a colour .png")
    ap.add_argument("--output-frame", choices=("model", "photo"), default="model")
    args = ap.parse_args(argv)

    regions = {}
    for item in args.region:
        name, eq, photo = item.partition("=")
        if not eq or not photo:
            ap.error(f"--region {item!r}: expected NAME=PHOTO, e.g. upper_clothes=model.jpg")
        regions[name.strip()] = photo
    mix = None
    if args.mix:
        try:
            ts = [float(t) for t in args.t.split(",")] if args.t else args.steps
        except ValueError:
            ap.error(f"--t {args.t!r}: expected comma-separated numbers, e.g. 0,0.5,1")
        names = [n.strip() for n in args.mix_regions.split(",")] if args.mix_regions else None
        mix = (args.mix, ts, names) if names else (args.mix, ts)
    pose = None
    if args.pose:
        pose = np.load(args.pose) if args.pose.endswith(".npy") else args.pose
    try:  # a bad name, file or pose is a one-line usage error, not a traceback
        editor = load(args.model, args.checkpoint, variant=args.variant)
        images, parsing = editor(
            args.person,
            pose=pose,
            regions=regions,
            mix=mix,
            person_pose=args.person_pose,
            person_parsing=args.person_parsing,
            return_parsing=True,
            output=args.output_frame,
            pose_frame=args.pose_frame,
        )
    except (ValueError, FileNotFoundError) as e:
        ap.error(str(e))
    written = [pathlib.Path(args.out)]
    Image.fromarray(_strip(images)).save(_made_parent(written[0]))
    if args.parsing_out:
        written.append(pathlib.Path(args.parsing_out))
        Image.fromarray(_strip(colour_parsing(parsing))).save(_made_parent(written[1]))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _made_parent(path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class _CallableModule(types.ModuleType):
    """``import ptx.edit`` makes ``ptx.edit`` this module; calling it still edits."""

    def __call__(self, *args, **kwargs):
        return edit(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__].__class__ = _CallableModule
