"""Puppets: a deterministic procedural renderer of clothed people, the built-in dataset (no download).

An :class:`Identity` (body proportions, skin, hair, patterned upper and lower garments, shoes) is drawn from a
seed; a pose (18 COCO keypoints) is drawn from another seed by posing a simple 3D skeleton (standing, walking,
arms raised, hands on hips, reaching; front, three-quarter, side and back views) and projecting it. :func:`render`
paints the identity in that pose:

* shapes are tapered capsules, rotated ellipses and polygons filled with PIL at 2x and averaged down
  (anti-aliasing); the whole image is vectorised numpy, no per-pixel Python;
* painter's order follows the view: limbs on the far side are drawn behind the torso, near ones in front;
* garment patterns (solid, stripes, checks, plaid, dots, print-like noise, gradient) live in body-anchored
  coordinates, so the same identity looks the same in every pose;
* outputs: ``image`` uint8 HxWx3, ``keypoints`` float32 (18, 2) (y, x) with -1 where a joint is out of frame,
  hidden behind the body, or (for eyes, ears, nose) facing away, and ``parsing`` uint8 HxW with LIP labels
  (:data:`ptx.data.parsing.LIP_CLASSES`: background, hair, face (+neck), upper clothes, pants, skirt,
  left/right arm, left/right leg, left/right shoe -- sides are the person's); merge with
  :func:`ptx.data.parsing.merge_lip` (``CASD_LIP_TABLE``) for CASD's 8 regions.

Styles: ``fashion`` 256x176 on a plain light background (DeepFashion-like), ``market`` 128x64 on a cluttered
street-like background (Market-1501-like). Everything is a pure function of its seeds.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np
from PIL import Image, ImageDraw

from ptx.data import keypoints as K

STYLES = {"fashion": (256, 176), "market": (128, 64)}
_SS = 2  # supersampling factor of the drawing canvas

Colour = tuple[int, int, int]

# ----------------------------------------------------------------------------------------------------------------
# Body proportions, in units of the standing height T (top of head to sole), shared by pose sampling and drawing.
TORSO = 0.295  # neck keypoint (shoulder line) -> mid-hip
SHOULDER = 0.102  # half distance between the shoulder joints
HIP = 0.058  # half distance between the hip joints
UPPER_ARM, FOREARM = 0.172, 0.148
THIGH, SHIN = 0.235, 0.238
HEAD_UP = 0.118  # neck keypoint -> head centre
HEAD_RX, HEAD_RY = 0.05, 0.064
# Face points in the head frame (lateral-left, forward, up) and the normal that decides whether they are seen.
_FACE = {
    0: ((0.0, 0.052, -0.02), (0.0, 1.0, 0.0), -0.25),  # nose
    14: ((0.021, 0.043, 0.006), (0.45, 0.9, 0.0), 0.0),  # Leye
    15: ((-0.021, 0.043, 0.006), (-0.45, 0.9, 0.0), 0.0),  # Reye
    16: ((0.049, -0.004, -0.002), (0.95, -0.3, 0.0), -0.45),  # Lear
    17: ((-0.049, -0.004, -0.002), (-0.95, -0.3, 0.0), -0.45),  # Rear
}

# ----------------------------------------------------------------------------------------------------------------
# Palettes.
SKIN_TONES = (
    (255, 224, 196), (243, 204, 176), (234, 189, 157), (222, 170, 134), (200, 148, 110), (176, 120, 86),
    (150, 98, 66), (118, 76, 50), (92, 60, 42), (236, 196, 168),
)  # fmt: skip
HAIR_COLOURS = (
    (22, 18, 16), (40, 28, 22), (66, 44, 30), (98, 64, 38), (140, 98, 58), (190, 152, 98), (222, 196, 138),
    (120, 52, 28), (150, 146, 142), (52, 40, 36),
)  # fmt: skip
CLOTH_COLOURS = (
    (245, 245, 242), (30, 30, 34), (26, 42, 86), (60, 90, 150), (110, 140, 190), (168, 30, 40), (210, 80, 60),
    (232, 150, 160), (245, 200, 210), (90, 110, 60), (50, 90, 70), (200, 180, 140), (150, 120, 90),
    (100, 70, 50), (240, 200, 80), (220, 120, 40), (120, 70, 140), (180, 160, 210), (90, 170, 170),
    (130, 130, 135), (190, 190, 195), (70, 70, 75), (250, 235, 210), (40, 120, 180), (200, 60, 120),
)  # fmt: skip
SHOE_COLOURS = ((25, 25, 28), (240, 240, 240), (110, 70, 40), (60, 40, 30), (160, 30, 40), (40, 50, 90),
                (200, 180, 150))  # fmt: skip

PATTERNS = ("solid", "stripes", "checks", "plaid", "dots", "print", "gradient")
UPPER_KINDS = ("tank", "tshirt", "elbow", "long")  # sleeve length
LOWER_KINDS = ("pants", "shorts", "skirt", "long_skirt")
HAIR_STYLES = ("short", "buzz", "bob", "long", "ponytail", "bun")
SHOE_STYLES = ("sneaker", "boot")
POSE_KINDS = ("stand", "model", "walk", "hands_hips", "arms_up", "one_arm_up", "reach")


@dataclasses.dataclass(frozen=True)
class Garment:
    """A garment's cut (``kind``) and its fabric: pattern kind, up to 3 colours, pattern parameters."""

    kind: str
    pattern: str
    colours: tuple[Colour, Colour, Colour]
    period: float  # pattern period in units of T
    angle: float  # pattern orientation (radians)
    waves: tuple[tuple[float, float, float], ...]  # (fu, fv, phase) of the print-like pattern


@dataclasses.dataclass(frozen=True)
class Identity:
    """Everything about a person that does not change with the pose."""

    seed: int
    shoulders: float  # width factors around 1
    hips: float
    build: float  # limb and waist thickness factor
    head: float  # head size factor
    legs: float  # leg length factor (used when poses are sampled for this identity)
    skin: Colour
    hair_style: str
    hair_colour: Colour
    hair_fringe: float  # 0 = high forehead; larger = hair lower on the face
    hair_part: float  # sideways offset of the hairline (fraction of the head's half-width)
    upper: Garment
    lower: Garment
    shoes: Colour
    shoe_style: str


def _rng(*key: int | str) -> np.random.Generator:
    parts = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in key]
    return np.random.default_rng([p & 0xFFFFFFFF for p in parts])


def _jitter(rng: np.random.Generator, colour: Colour, amount: float) -> Colour:
    c = np.clip(np.asarray(colour, np.float64) + rng.normal(0, amount, 3) + rng.normal(0, amount), 0, 255)
    return tuple(int(v) for v in np.round(c))


def _sample_garment(rng: np.random.Generator, kinds: tuple[str, ...], weights) -> Garment:
    kind = str(rng.choice(kinds, p=weights))
    pattern = str(rng.choice(PATTERNS, p=(0.3, 0.17, 0.1, 0.08, 0.12, 0.13, 0.1)))
    idx = rng.choice(len(CLOTH_COLOURS), 3, replace=False)
    colours = tuple(_jitter(rng, CLOTH_COLOURS[i], 10) for i in idx)
    waves = tuple(
        (float(f * math.cos(a)), float(f * math.sin(a)), float(p))
        for f, a, p in zip(rng.uniform(8, 26, 5), rng.uniform(0, math.pi, 5), rng.uniform(0, 2 * math.pi, 5))
    )
    angle = float(rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4], p=(0.5, 0.2, 0.15, 0.15)))
    return Garment(kind, pattern, colours, float(rng.uniform(0.025, 0.06)), angle, waves)


def sample_identity(seed: int) -> Identity:
    """A person from a seed: proportions, skin tone, hair, an upper and a lower garment, shoes."""
    rng = _rng("identity", int(seed))
    hair_style = str(rng.choice(HAIR_STYLES, p=(0.25, 0.1, 0.17, 0.28, 0.12, 0.08)))
    upper = _sample_garment(rng, UPPER_KINDS, (0.12, 0.45, 0.13, 0.3))
    lower = _sample_garment(rng, LOWER_KINDS, (0.5, 0.15, 0.22, 0.13))
    if lower.pattern in ("stripes", "checks", "plaid", "dots") and rng.random() < 0.6:
        lower = dataclasses.replace(lower, pattern="solid")  # busy trousers are rarer than busy tops
    return Identity(
        seed=int(seed),
        shoulders=float(rng.uniform(0.9, 1.12)),
        hips=float(rng.uniform(0.92, 1.12)),
        build=float(rng.uniform(0.85, 1.2)),
        head=float(rng.uniform(0.92, 1.08)),
        legs=float(rng.uniform(0.94, 1.06)),
        skin=_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 6),
        hair_style=hair_style,
        hair_colour=_jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 6),
        hair_fringe=float(rng.choice([0.0, rng.uniform(0.02, 0.14)], p=(0.5, 0.5))),
        hair_part=float(rng.uniform(-0.15, 0.15)),
        upper=upper,
        lower=lower,
        shoes=_jitter(rng, SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))], 8),
        shoe_style=str(rng.choice(SHOE_STYLES, p=(0.75, 0.25))),
    )


# ----------------------------------------------------------------------------------------------------------------
# Poses: a 3D skeleton in the body frame (lateral-left, forward, up), posed by joint angles, turned by a yaw
# and projected orthographically (image x right, y down, z away from the camera).


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else v


def _limb_dirs(side: float, abduct: float, flex: float, bend: float, plane: float, arm: bool):
    """Directions of the proximal and distal segments of a limb (degrees in, unit vectors out)."""
    a, b, e, p = (math.radians(v) for v in (abduct, flex, bend, plane))
    d1 = _unit(np.array([side * math.sin(a), math.sin(b) * math.cos(a), -math.cos(a) * math.cos(b)]))
    if arm:  # elbows bend forward (plane 0) or towards the body's midline (plane 90)
        q = np.array([-side * math.sin(p), math.cos(p), 0.0])
    else:  # knees bend backwards
        q = np.array([0.0, -1.0, 0.0])
    q = q - (q @ d1) * d1
    if np.linalg.norm(q) < 1e-6:
        q = np.array([0.0, 0.0, 1.0]) - d1[2] * d1
    q = _unit(q)
    return d1, _unit(math.cos(e) * d1 + math.sin(e) * q)


def _pose_angles(rng: np.random.Generator, kind: str) -> dict[str, tuple[float, float, float, float]]:
    """(abduct, flex, bend, bend plane) per limb: 'R_arm', 'L_arm', 'R_leg', 'L_leg'."""
    u = rng.uniform

    def hang():
        return (u(4, 16), u(-8, 12), u(5, 30), 0.0)

    def leg():
        return (u(1, 7), u(-4, 6), u(0, 8), 0.0)

    def hip_hand():
        return (u(30, 45), u(-12, 5), u(65, 88), u(75, 90))  # wrist lands on the hip

    def raised():
        return (u(100, 168), u(-10, 25), u(0, 70), 90.0)

    ang = {"R_arm": hang(), "L_arm": hang(), "R_leg": leg(), "L_leg": leg()}
    side = str(rng.choice(["R", "L"]))
    other = "L" if side == "R" else "R"
    if kind == "model":
        ang[f"{side}_arm"] = hip_hand()
        ang[f"{other}_leg"] = (u(-6, 0), u(5, 15), u(10, 25), 0.0)
    elif kind == "walk":
        ph = u(-1, 1)
        ang["R_leg"] = (u(1, 5), 24 * ph, u(3, 8) + (18 * max(0.0, -ph)), 0.0)
        ang["L_leg"] = (u(1, 5), -24 * ph, u(3, 8) + (18 * max(0.0, ph)), 0.0)
        ang["R_arm"] = (u(4, 10), -20 * ph, u(10, 35), 0.0)
        ang["L_arm"] = (u(4, 10), 20 * ph, u(10, 35), 0.0)
    elif kind == "hands_hips":
        ang["R_arm"], ang["L_arm"] = hip_hand(), hip_hand()
    elif kind == "arms_up":
        ang["R_arm"], ang["L_arm"] = raised(), raised()
    elif kind == "one_arm_up":
        ang[f"{side}_arm"] = raised()
    elif kind == "reach":
        ang[f"{side}_arm"] = (u(5, 30), u(40, 85), u(0, 40), 0.0)
    return ang


def _skeleton_3d(rng: np.random.Generator, kind: str, identity: Identity | None) -> dict[int, np.ndarray]:
    """Joint positions (lateral-left, forward, up) in units of T, mid-hip at the origin."""
    sh = SHOULDER * (identity.shoulders if identity else 1.0)
    hp = HIP * (identity.hips if identity else 1.0)
    head = identity.head if identity else 1.0
    legs = identity.legs if identity else 1.0
    lean, tilt = math.radians(rng.normal(0, 3)), math.radians(rng.normal(0, 2))
    up = _unit(np.array([math.sin(tilt), math.sin(lean), 1.0]))
    lat = _unit(np.array([1.0, 0.0, -math.sin(tilt)]))
    j: dict[int, np.ndarray] = {}
    j[1] = up * TORSO
    j[2], j[5] = j[1] - lat * sh, j[1] + lat * sh
    j[8], j[11] = -lat * hp, lat * hp
    ang = _pose_angles(rng, kind)
    for side, s, (sho, elb, wri), (hip, kne, ank) in (
        ("R", -1.0, (2, 3, 4), (8, 9, 10)),
        ("L", 1.0, (5, 6, 7), (11, 12, 13)),
    ):
        d1, d2 = _limb_dirs(s, *ang[f"{side}_arm"], arm=True)
        j[elb] = j[sho] + d1 * UPPER_ARM
        j[wri] = j[elb] + d2 * FOREARM
        d1, d2 = _limb_dirs(s, *ang[f"{side}_leg"], arm=False)
        j[kne] = j[hip] + d1 * THIGH * legs
        j[ank] = j[kne] + d2 * SHIN * legs
    centre = j[1] + up * HEAD_UP * head
    fwd = _unit(np.cross(up, lat))
    for k, (off, _, _) in _FACE.items():
        j[k] = centre + head * (off[0] * lat + off[1] * fwd + off[2] * up)
    j[-1] = centre  # head centre, for framing
    return j


def _face_visible(yaw: float) -> dict[int, bool]:
    c, s = math.cos(yaw), math.sin(yaw)
    # toward-camera component of a body-frame normal (lateral, forward): lateral -> -sin(yaw), forward -> cos(yaw)
    return {k: (n[0] * -s + n[1] * c) / math.hypot(n[0], n[1]) > thr for k, (_, n, thr) in _FACE.items()}


def _project(j: dict[int, np.ndarray], yaw: float) -> dict[int, np.ndarray]:
    """Body frame -> image (x right, y down) and depth z (away from the camera), T units."""
    c, s = math.cos(yaw), math.sin(yaw)
    out = {}
    for k, (a, b, u) in j.items():
        out[k] = np.array([a * c + b * s, -u, a * s - b * c])
    return out


def _sample_yaw(rng: np.random.Generator, style: str) -> float:
    p = (0.45, 0.2, 0.15, 0.2) if style == "fashion" else (0.3, 0.15, 0.25, 0.3)
    view = rng.choice(4, p=p)
    sign = rng.choice([-1.0, 1.0])
    centre = (0.0, 40.0, 90.0, 180.0)[view] * sign
    spread = (12.0, 10.0, 8.0, 12.0)[view]
    return math.radians(centre + rng.uniform(-spread, spread))


def sample_pose(seed: int, style: str = "fashion", *, identity: Identity | None = None) -> np.ndarray:
    """18 keypoints (y, x) float32 of a plausible pose, framed for ``style``.

    Body joints are always given, possibly outside the frame (a close-up cuts the legs, a raised hand may leave
    the picture); :func:`render` marks those -1. Face points turned away from the camera are -1 here already
    (which also tells :func:`render` the view). Coordinates are whole pixels, like the originals' CSVs. Pass the
    ``identity`` to use its shoulder/hip widths and head size (otherwise average ones).
    """
    if style not in STYLES:
        raise ValueError(f"unknown puppets style {style!r}; expected one of {sorted(STYLES)}")
    h, w = STYLES[style]
    rng = _rng("pose", int(seed), style)
    weights = (
        (0.22, 0.18, 0.16, 0.1, 0.1, 0.1, 0.14)
        if style == "fashion"
        else (0.3, 0.03, 0.55, 0.03, 0.02, 0.03, 0.04)
    )
    kind = str(rng.choice(POSE_KINDS, p=weights))
    j3 = _skeleton_3d(rng, kind, identity)
    yaw = _sample_yaw(rng, style)
    p = _project(j3, yaw)
    head = identity.head if identity else 1.0
    top = p[-1][1] - HEAD_RY * head * 1.08
    bottom = max(p[10][1], p[13][1]) + 0.045
    xs = np.array([p[k][0] for k in range(18)])
    mid_x = 0.5 * (xs.min() + xs.max())
    if style == "fashion" and rng.random() < 0.2:  # close-up: legs leave the frame
        t_px = h * rng.uniform(1.15, 1.6)
        y0 = h * rng.uniform(0.02, 0.07)
    else:
        frac = rng.uniform(0.85, 0.95) if style == "fashion" else rng.uniform(0.88, 1.0)
        if style == "market" and rng.random() < 0.1:
            frac = rng.uniform(1.05, 1.2)  # a tight crop that cuts the feet
        t_px = h * frac / (bottom - top)
        y0 = rng.uniform(0.1, 0.9) * max(h - t_px * (bottom - top), 2.0)
    x0 = w / 2 + rng.normal(0, 0.025 * w)
    kps = np.zeros((18, 2), np.float64)
    for k in range(18):
        kps[k] = (y0 + (p[k][1] - top) * t_px, x0 + (p[k][0] - mid_x) * t_px)
    kps = np.round(kps)
    kps[kps == -1] = -2  # an off-frame body joint must not read as "missing"
    for k, seen in _face_visible(yaw).items():
        if not seen:
            kps[k] = -1
    return kps.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Drawing.

# Region ids of the canvas -> (LIP label, material). Materials pick the colour.
_M_BG, _M_SKIN, _M_HAIR, _M_UPPER, _M_LOWER, _M_SHOE, _M_EYE, _M_MOUTH, _M_BROW = range(9)
_REGIONS = (
    (0, _M_BG),  # 0 background
    (13, _M_SKIN),  # 1 face / neck
    (2, _M_HAIR),  # 2 hair
    (5, _M_UPPER),  # 3 upper clothes
    (9, _M_LOWER),  # 4 pants
    (12, _M_LOWER),  # 5 skirt
    (14, _M_SKIN),  # 6 left arm
    (15, _M_SKIN),  # 7 right arm
    (16, _M_SKIN),  # 8 left leg
    (17, _M_SKIN),  # 9 right leg
    (18, _M_SHOE),  # 10 left shoe
    (19, _M_SHOE),  # 11 right shoe
    (13, _M_EYE),  # 12 eyes
    (13, _M_MOUTH),  # 13 mouth
    (13, _M_BROW),  # 14 eyebrows (hair colour)
)
_R_FACE, _R_HAIR, _R_UPPER, _R_PANTS, _R_SKIRT = 1, 2, 3, 4, 5
_R_ARM = {"L": 6, "R": 7}
_R_LEG = {"L": 8, "R": 9}
_R_SHOE = {"L": 10, "R": 11}
_R_EYE, _R_MOUTH, _R_BROW = 12, 13, 14
_REGION_LIP = np.array([r[0] for r in _REGIONS], np.uint8)
_REGION_MAT = np.array([r[1] for r in _REGIONS], np.uint8)

# Segment groups (for occlusion of keypoints).
_G_TORSO, _G_PELVIS, _G_NECK, _G_HEAD, _G_HAIR = 1, 2, 3, 4, 5
_G = {
    (part, side): 6 + 2 * i + (side == "L")
    for i, part in enumerate(("uarm", "farm", "hand", "thigh", "shin", "foot"))
    for side in "RL"
}
# Body chains: boundaries between different chains (an arm over the torso, crossed legs) get shaded, the joints
# inside one chain (elbow, knee) do not.
_CHAIN = np.zeros(256, np.uint8)
_CHAIN[_G_TORSO] = 1
_CHAIN[_G_PELVIS] = 9  # trousers run into the legs without a seam
_CHAIN[[_G_HEAD, _G_HAIR]] = 2
_CHAIN[_G_NECK] = 3  # a soft jaw line
for _i, _s in enumerate("RL"):
    _CHAIN[[_G[(p, _s)] for p in ("uarm", "farm", "hand")]] = 4 + _i
    _CHAIN[[_G[(p, _s)] for p in ("thigh", "shin", "foot")]] = 6 + _i
_NOT_OCCLUDERS = {0, _G_HAIR} | {_G[(p, s)] for p in ("farm", "hand", "foot") for s in "RL"}
_JOINT_GROUPS: dict[int, set[int]] = {k: {_G_HEAD, _G_HAIR, _G_NECK} for k in (0, 14, 15, 16, 17)}
_JOINT_GROUPS[1] = {_G_TORSO, _G_NECK, _G_HEAD, _G_HAIR, _G_PELVIS}
for _s, (_sho, _elb, _wri, _hip, _kne, _ank) in (("R", (2, 3, 4, 8, 9, 10)), ("L", (5, 6, 7, 11, 12, 13))):
    _JOINT_GROUPS[_sho] = {_G_TORSO, _G_NECK, _G[("uarm", _s)]}
    _JOINT_GROUPS[_elb] = {_G[("uarm", _s)], _G[("farm", _s)]}
    _JOINT_GROUPS[_wri] = {_G[("farm", _s)], _G[("hand", _s)]}
    _JOINT_GROUPS[_hip] = {_G_PELVIS, _G_TORSO, _G[("thigh", _s)]}
    _JOINT_GROUPS[_kne] = {_G[("thigh", _s)], _G[("shin", _s)]}
    _JOINT_GROUPS[_ank] = {_G[("shin", _s)], _G[("foot", _s)]}


class _Canvas:
    """Two label images drawn together at _SS x: region ids (colour, parsing) and segment groups (occlusion)."""

    def __init__(self, h: int, w: int):
        self.region = Image.new("L", (w * _SS, h * _SS), 0)
        self.group = Image.new("L", (w * _SS, h * _SS), 0)
        self._dr = ImageDraw.Draw(self.region)
        self._dg = ImageDraw.Draw(self.group)
        self.g = 0

    @staticmethod
    def _pts(xy: np.ndarray) -> list[tuple[float, float]]:
        xy = np.asarray(xy, np.float64).reshape(-1, 2) * _SS + (_SS - 1) / 2
        return [tuple(p) for p in xy.tolist()]

    def polygon(self, xy: np.ndarray, region: int) -> None:
        pts = self._pts(xy)
        if len(pts) >= 3:
            self._dr.polygon(pts, fill=region)
            self._dg.polygon(pts, fill=self.g)

    def ellipse(self, c, rx: float, ry: float, region: int, axis=(0.0, -1.0), n: int = 20) -> None:
        """Ellipse with semi-axis ``ry`` along ``axis`` (a unit (x, y) vector) and ``rx`` across it."""
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        ax = np.asarray(axis, np.float64)
        perp = np.array([-ax[1], ax[0]])
        pts = np.asarray(c, np.float64) + np.outer(np.cos(t) * ry, ax) + np.outer(np.sin(t) * rx, perp)
        self.polygon(pts, region)

    def disc(self, c, r: float, region: int) -> None:
        (x, y), r2 = self._pts(c)[0], r * _SS
        box = [x - r2, y - r2, x + r2, y + r2]
        self._dr.ellipse(box, fill=region)
        self._dg.ellipse(box, fill=self.g)

    def capsule(self, p0, p1, r0: float, r1: float, region: int) -> None:
        """A limb: two discs joined by the tangent-ish trapezoid."""
        p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        self.polygon(np.array([p0 + n * r0, p1 + n * r1, p1 - n * r1, p0 - n * r0]), region)
        self.disc(p0, r0, region)
        self.disc(p1, r1, region)


@dataclasses.dataclass
class _View:
    """What the drawing needs from a keypoint array: scale, axes and view, all in image pixels."""

    kp: np.ndarray  # (18, 2) (x, y), nan where missing
    t: float  # standing height in pixels
    up: np.ndarray  # unit (x, y) from mid-hip to neck
    right: np.ndarray  # unit (x, y) perpendicular, towards image right
    cos: float
    sin: float  # > 0: facing image right (the person's right side is near)
    face: bool  # face towards the camera (nose visible)
    midhip: np.ndarray
    neck: np.ndarray


def _infer_view(keypoints: np.ndarray, identity: Identity) -> _View:
    kps = np.asarray(keypoints, np.float64).reshape(18, 2)
    present = K.is_present(kps) & np.all(np.isfinite(kps), axis=1)
    kp = np.where(present[:, None], kps[:, ::-1], np.nan)  # (x, y)

    def get(*idx):
        pts = [kp[i] for i in idx if present[i]]
        return np.mean(pts, axis=0) if pts else None

    neck = get(1)
    if neck is None:
        neck = get(2, 5)
    hips = get(8, 11)
    t = None
    if neck is not None and hips is not None and np.hypot(*(neck - hips)) > 1:
        t = np.hypot(*(neck - hips)) / TORSO
    if t is None:  # fall back on whatever bones are there
        cands = [
            np.hypot(*(kp[a] - kp[b])) / length
            for a, b, length in (
                (2, 3, UPPER_ARM),
                (5, 6, UPPER_ARM),
                (9, 10, SHIN),
                (12, 13, SHIN),
                (8, 9, THIGH),
            )
            if present[a] and present[b]
        ]
        t = max(cands) if cands else 100.0
    t = max(float(t), 8.0)
    if neck is None:
        neck = get(0, 14, 15, 16, 17)
        neck = np.array([0.0, 0.0]) if neck is None else neck + np.array([0.0, 0.1 * t])
    if hips is None:
        hips = neck + np.array([0.0, TORSO * t])
    up = _unit(neck - hips)
    if not np.all(np.isfinite(up)) or np.hypot(*up) < 0.5:
        up = np.array([0.0, -1.0])
    right = np.array([-up[1], up[0]])  # rotate (0,-1) -> (1,0)
    c = 1.0
    if present[2] and present[5]:
        c = float(np.clip(((kp[5] - kp[2]) @ right) / (2 * SHOULDER * identity.shoulders * t), -1, 1))
        c = math.copysign(1.0, c) if abs(c) > 0.9 else c
    face = bool(present[0])
    if face:
        head_c = neck + up * HEAD_UP * identity.head * t
        sgn = float(np.sign((kp[0] - head_c) @ right)) if abs((kp[0] - head_c) @ right) > 0.004 * t else 0.0
        if c < 0:  # a visible nose with crossed-looking shoulders: trust the face
            c = abs(c)
    else:
        sgn = float(present[17]) - float(present[16])
        if not present[16] and not present[17] and c > 0:
            c = -c
    s = sgn * math.sqrt(max(0.0, 1 - c * c))
    return _View(kp, t, up, right, c, s, face, hips, neck)


def _pattern_colours(g: Garment, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Garment colour at body-anchored coordinates (u right, v down, units of T) -> (N, 3) float."""
    cols = np.asarray(g.colours, np.float32)
    p = g.period
    ca, sa = math.cos(g.angle), math.sin(g.angle)
    a, b = u * ca + v * sa, -u * sa + v * ca
    if g.pattern == "solid":
        idx = np.zeros(u.shape, np.int64)
    elif g.pattern == "stripes":
        idx = (np.floor(b / p) % 2).astype(np.int64)
    elif g.pattern == "checks":
        idx = ((np.floor(a / p) + np.floor(b / p)) % 2).astype(np.int64)
    elif g.pattern == "plaid":
        fa, fb = (a / (2 * p)) % 1.0, (b / (2 * p)) % 1.0
        band = (fa < 0.3).astype(np.float32) + (fb < 0.3).astype(np.float32)
        thin = ((fa > 0.62) & (fa < 0.68)) | ((fb > 0.62) & (fb < 0.68))
        out = cols[0][None] * (1 - 0.25 * band[:, None])
        out = np.where(thin[:, None], cols[2][None], out)
        return out
    elif g.pattern == "dots":
        q = p * 1.2
        row = np.floor(b / q)
        aa = a + 0.5 * q * (row % 2)
        da, db = (aa % q) - q / 2, (b % q) - q / 2
        idx = ((da * da + db * db) < (0.27 * q) ** 2).astype(np.int64)
    elif g.pattern == "print":
        f = np.zeros(u.shape, np.float32)
        for fu, fv, ph in g.waves:
            f += np.cos(2 * np.pi * (fu * u + fv * v) + ph)
        idx = np.where(f > 1.1, 1, np.where(f < -1.6, 2, 0))
    elif g.pattern == "gradient":
        tt = np.clip(v * 2.5 + 0.5, 0, 1)[:, None]
        return cols[0][None] * (1 - tt) + cols[1][None] * tt
    else:
        raise ValueError(f"unknown pattern {g.pattern!r}")
    return cols[idx]


THIGH_R = 0.047  # thigh radius at the hip joint (T units, times build)


def _hip_width(i: Identity) -> float:
    """Half-width of the hips over the thighs (T units): the garments there must cover both thighs."""
    return HIP * i.hips + THIGH_R * i.build * 1.06


def _lerp(p0, p1, f):
    return p0 + (p1 - p0) * f


class _Painter:
    """Draws one identity in one view on a _Canvas, segment by segment in painter's order."""

    def __init__(self, identity: Identity, view: _View, canvas: _Canvas):
        self.i, self.v, self.c = identity, view, canvas
        self.t = view.t
        self.kp = view.kp

    def has(self, *idx: int) -> bool:
        return all(np.all(np.isfinite(self.kp[i])) for i in idx)

    def width(self, w: float, d: float) -> float:
        """Visible half-width of a body slice with half-width w and half-depth d (T units) -> pixels."""
        return (abs(self.v.cos) * w + abs(self.v.sin) * d) * self.t

    def at(self, t_axis: float, x: float) -> np.ndarray:
        """Point on the torso: fraction t_axis down the neck->hip axis, x pixels to the image right."""
        v = self.v
        return _lerp(v.neck, v.midhip, t_axis) + v.right * x

    # --- segments -----------------------------------------------------------------------------------------------
    def torso(self) -> None:
        i, c = self.i, self.c
        c.g = _G_TORSO
        hem = {"tank": 1.0, "tshirt": 1.02, "elbow": 1.02, "long": 1.06}[i.upper.kind]
        levels = (
            (-0.07, 0.028, 0.03),
            (-0.05, 0.55 * SHOULDER * i.shoulders, 0.05),
            (-0.012, 0.95 * SHOULDER * i.shoulders + 0.008, 0.055),
            (0.05, SHOULDER * i.shoulders + 0.02 * i.build, 0.058),
            (0.25, 0.093 * max(i.shoulders, i.build), 0.068),
            (0.62, 0.078 * i.build, 0.058),
            (hem, _hip_width(i) + 0.006, 0.066),
        )
        left = [self.at(t, -self.width(w, d)) for t, w, d in levels]
        right = [self.at(t, self.width(w, d)) for t, w, d in reversed(levels)]
        c.polygon(np.array(left + right), _R_UPPER)

    def pelvis(self) -> None:
        i, c, v = self.i, self.c, self.v
        c.g = _G_PELVIS
        region = _R_SKIRT if "skirt" in i.lower.kind else _R_PANTS
        w_waist, w_hip = 0.08 * i.build, _hip_width(i)
        pts = [self.at(0.6, -self.width(w_waist, 0.058)), self.at(1.0, -self.width(w_hip, 0.068))]
        if region == _R_SKIRT:
            frac = 0.5 if i.lower.kind == "skirt" else 0.85  # hem: down the legs (0.5 = knee)
            hem = []
            for hip, kne, ank in ((8, 9, 10), (11, 12, 13)):
                if self.has(hip, kne, ank):
                    pos = (
                        _lerp(self.kp[hip], self.kp[kne], frac * 2)
                        if frac <= 0.5
                        else _lerp(self.kp[kne], self.kp[ank], (frac - 0.5) * 2)
                    )
                    hem.append(pos)
            if not hem:
                hem = [v.midhip - v.up * 0.25 * self.t]
            hem = np.array(hem)
            across = (hem - v.midhip) @ v.right
            flare = (0.07 if i.lower.kind == "skirt" else 0.1) * self.t
            lo = hem[np.argmin(across)] + v.right * (-flare) + (-v.up) * 0.01 * self.t
            hi = hem[np.argmax(across)] + v.right * flare + (-v.up) * 0.01 * self.t
            pts += [lo, hi]
        else:
            pts += [self.at(1.2, -0.01 * self.t), self.at(1.2, 0.01 * self.t)]
        pts += [self.at(1.0, self.width(w_hip, 0.068)), self.at(0.6, self.width(w_waist, 0.058))]
        c.polygon(np.array(pts), region)

    def leg(self, side: str) -> None:
        hip, kne, ank = (8, 9, 10) if side == "R" else (11, 12, 13)
        i, c, t, kp = self.i, self.c, self.t, self.kp
        b = i.build
        r_hip, r_knee, r_ankle = THIGH_R * b * t, 0.036 * b * t, 0.023 * b * t
        lower = i.lower.kind
        cover_region = _R_PANTS if lower in ("pants", "shorts") else _R_SKIRT
        if self.has(hip, kne):
            c.g = _G[("thigh", side)]
            c.capsule(kp[hip], kp[kne], r_hip, r_knee, _R_LEG[side])
            if lower in ("pants", "shorts"):
                end = kp[kne] if lower == "pants" else _lerp(kp[hip], kp[kne], 0.5)
                c.capsule(kp[hip], end, r_hip * 1.06, _lerp(r_hip, r_knee, 0.5 if lower == "shorts" else 1) * 1.1,
                          cover_region)  # fmt: skip
        if self.has(kne, ank):
            c.g = _G[("shin", side)]
            c.capsule(kp[kne], kp[ank], r_knee * 0.95, r_ankle, _R_LEG[side])
            if lower == "pants":
                c.capsule(
                    kp[kne], kp[ank] + (kp[ank] - kp[kne]) * 0.05, r_knee * 1.1, r_ankle * 1.35, cover_region
                )
            if i.shoe_style == "boot":
                c.capsule(_lerp(kp[kne], kp[ank], 0.6), kp[ank], r_ankle * 1.3, r_ankle * 1.3, _R_SHOE[side])
        if self.has(ank):
            c.g = _G[("foot", side)]
            v = self.v
            down = -v.up
            fwd = v.right * v.sin  # forward, as seen in the image
            splay = v.right * (0.012 if side == "L" else -0.012) * v.cos * t
            heel = kp[ank] + down * 0.022 * t - fwd * 0.03 * t
            toe = kp[ank] + down * 0.036 * t + fwd * 0.1 * t + splay
            c.capsule(heel, toe, 0.026 * t, 0.022 * t, _R_SHOE[side])

    def arm(self, side: str) -> None:
        sho, elb, wri = (2, 3, 4) if side == "R" else (5, 6, 7)
        i, c, t, kp = self.i, self.c, self.t, self.kp
        b = i.build
        r_sho, r_elb, r_wri = 0.029 * b * t, 0.025 * b * t, 0.018 * b * t
        sleeve = {"tank": 0.0, "tshirt": 0.45, "elbow": 1.0, "long": 1.97}[i.upper.kind]
        if self.has(sho, elb):
            c.g = _G[("uarm", side)]
            # start one radius down the arm, so the deltoid's top sits at the shoulder line, not above it
            shift = min(0.9 * r_sho, 0.4 * float(np.hypot(*(kp[elb] - kp[sho]))))
            top = kp[sho] + _unit(kp[elb] - kp[sho]) * shift
            c.capsule(top, kp[elb], r_sho, r_elb, _R_ARM[side])
            if sleeve > 0:
                f = min(sleeve, 1.0)
                c.capsule(
                    top, _lerp(kp[sho], kp[elb], f), r_sho * 1.08, _lerp(r_sho, r_elb, f) * 1.1, _R_UPPER
                )
        if self.has(elb, wri):
            c.g = _G[("farm", side)]
            c.capsule(kp[elb], kp[wri], r_elb * 0.95, r_wri, _R_ARM[side])
            if sleeve > 1:
                end = _lerp(kp[elb], kp[wri], sleeve - 1.0)
                c.capsule(kp[elb], end, r_elb * 1.18, r_wri * 1.35, _R_UPPER)
        if self.has(elb, wri):
            c.g = _G[("hand", side)]
            d = _unit(kp[wri] - kp[elb])
            c.capsule(kp[wri] + d * 0.012 * t, kp[wri] + d * 0.06 * t, 0.019 * t, 0.016 * t, _R_ARM[side])

    def neck(self) -> None:
        v, c = self.v, self.c
        c.g = _G_NECK
        top = v.neck + v.up * HEAD_UP * self.i.head * 0.8 * self.t
        c.capsule(v.neck + v.up * 0.01 * self.t, top, 0.034 * self.t, 0.03 * self.t, _R_FACE)
        if v.face and v.cos > 0.3:  # the garment's neckline opening
            deep = 0.045 if self.i.upper.kind == "tank" else 0.022
            c.ellipse(
                v.neck - v.up * 0.005 * self.t, 0.04 * v.cos * self.t, deep * self.t, _R_FACE, axis=v.up
            )

    def _head_geometry(self):
        v, i, t = self.v, self.i, self.t
        centre = v.neck + v.up * HEAD_UP * i.head * t
        return centre, HEAD_RX * i.head * t, HEAD_RY * i.head * t

    def hair_back(self) -> None:
        """Hair that hangs behind the head (long, bob, ponytail, bun)."""
        v, i, c = self.v, self.i, self.c
        centre, rx, ry = self._head_geometry()
        c.g = _G_HAIR
        back = -v.right * v.sin * rx  # the back of the head, as seen in the image
        style = i.hair_style
        if style in ("long", "bob"):
            length = 2.9 * ry if style == "long" else 1.15 * ry
            wid = rx * (1.12 + 0.15 * abs(v.sin))
            top = centre + v.up * 0.2 * ry + back * 0.25
            bot = centre - v.up * length + back * (0.55 if style == "long" else 0.35)
            pts = [
                top - v.right * wid,
                top + v.right * wid,
                bot + v.right * wid * 1.05,
                bot - v.right * wid * 1.05,
            ]
            c.polygon(np.array(pts), _R_HAIR)
            c.ellipse(bot, wid * 1.05, 0.25 * ry, _R_HAIR, axis=v.up)
        elif style == "ponytail":
            base = centre + back * 0.95 + v.up * 0.25 * ry
            c.capsule(base, base - v.up * 1.6 * ry + back * 0.2, 0.35 * rx, 0.22 * rx, _R_HAIR)
        elif style == "bun":
            c.disc(centre + v.up * 0.85 * ry + back * 0.45, 0.45 * rx, _R_HAIR)

    def head(self) -> None:
        v, i, c, t, kp = self.v, self.i, self.c, self.t, self.kp
        centre, rx, ry = self._head_geometry()
        c.g = _G_HEAD
        c.ellipse(centre, rx, ry, _R_FACE, axis=v.up)
        style = i.hair_style
        back = -v.right * v.sin
        cap = 1.0 if style != "buzz" else 0.96
        c.ellipse(
            centre + v.up * 0.1 * ry + back * 0.12 * rx, rx * 1.08 * cap, ry * 1.05 * cap, _R_HAIR, axis=v.up
        )
        if v.face:  # the face shows through the hair; the fringe sets the forehead, the parting its slant
            fy = (0.84 if style != "buzz" else 0.92) - i.hair_fringe
            side = v.sin * 0.25 + i.hair_part * abs(v.cos)
            fc = centre - v.up * (1.0 - fy) * ry + v.right * side * rx
            fx = rx * (0.86 - 0.12 * abs(v.sin))
            c.ellipse(fc, fx, ry * fy, _R_FACE, axis=v.up)
            if self.has(0):  # the nose (it sticks out of the head's outline in profile)
                c.ellipse(kp[0] - v.right * v.sin * 0.008 * t, 0.011 * t, 0.013 * t, _R_FACE, axis=v.up, n=12)
            er = max(0.0075 * t, 0.55)
            for eye in (14, 15):
                if self.has(eye):
                    c.ellipse(kp[eye] + v.up * 0.02 * t, er * 0.42, er * 1.6, _R_BROW, axis=v.right)
                    c.ellipse(kp[eye], er * 0.8, er * (1.25 - 0.3 * abs(v.sin)), _R_EYE, axis=v.right)
            if self.has(0):
                mouth = kp[0] - v.up * 0.019 * t - v.right * v.sin * 0.014 * t
                c.ellipse(mouth, er * 0.7, er * (2.2 - 1.2 * abs(v.sin)), _R_MOUTH, axis=v.right)

    # --- order ------------------------------------------------------------------------------------------------
    def paint(self) -> None:
        v = self.v
        near = "R" if v.sin > 0 else "L"
        far = "L" if near == "R" else "R"
        side_view = abs(v.sin) > 0.45
        arms_behind = [far] if side_view else []
        arms_front = [s for s in (far, near) if s not in arms_behind]
        legs = [far, near] if abs(v.sin) > 0.2 else ["R", "L"]
        # long hair hangs behind the torso seen from the front, over the neck in profile, over the head from behind
        hair = "front" if v.cos > 0.15 else ("back" if v.cos < -0.3 and not v.face else "side")
        for s in arms_behind:
            self.arm(s)
        if hair == "front":
            self.hair_back()
        for s in legs:
            self.leg(s)
        if self.has(1) or self.has(2, 5):
            self.pelvis()
            self.torso()
        self.neck()
        if hair == "side":
            self.hair_back()
        self.head()
        if hair == "back":
            self.hair_back()
        for s in arms_front:
            self.arm(s)


# ----------------------------------------------------------------------------------------------------------------
# Backgrounds.


def _fashion_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = np.array(
        rng.choice([[244, 244, 244], [238, 236, 232], [232, 236, 240], [246, 242, 236]]), np.float32
    )
    base = base + rng.normal(0, 3, 3)
    ramp = np.linspace(1.0, rng.uniform(0.94, 1.0), h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(base * ramp, (h, w, 3)).astype(np.float32)


def _market_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    horizon = int(h * rng.uniform(0.45, 0.75))
    wall = rng.uniform(60, 190) + rng.normal(0, 18, 3)
    img[:horizon] = wall
    ground = rng.uniform(70, 160) + rng.normal(0, 8, 3)
    img[horizon:] = ground
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(4, 10))):  # shop fronts, windows, signs, poles, bags, other people
        y0, x0 = int(rng.integers(-h // 4, h)), int(rng.integers(-w // 2, w))
        hh, ww = int(rng.integers(h // 12, h // 2)), int(rng.integers(w // 10, w // 1.5))
        col = rng.uniform(25, 225) + rng.normal(0, 30, 3) * rng.choice([0.4, 1.0, 1.8], p=(0.5, 0.35, 0.15))
        if rng.random() < 0.3:
            cy, cx = y0 + hh / 2, x0 + ww / 2
            m = ((yy - cy) / (hh / 2)) ** 2 + ((xx - cx) / (ww / 2)) ** 2 < 1
            img[m] = col
        else:
            img[max(y0, 0) : max(y0 + hh, 0), max(x0, 0) : max(x0 + ww, 0)] = col
    img += rng.normal(0, 3, (h, w, 1)).astype(np.float32)
    shade = np.linspace(rng.uniform(0.8, 1.1), rng.uniform(0.8, 1.1), w, dtype=np.float32)[None, :, None]
    img = img * shade
    # soften: a 3-tap box blur in each direction
    img = (img + np.roll(img, 1, 0) + np.roll(img, -1, 0)) / 3
    img = (img + np.roll(img, 1, 1) + np.roll(img, -1, 1)) / 3
    return img


# ----------------------------------------------------------------------------------------------------------------


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Separable box blur of radius r (edge-clamped), via cumulative sums."""
    for axis in (0, 1):
        n = a.shape[axis]
        pad = [(0, 0)] * a.ndim
        pad[axis] = (r + 1, r)
        c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.float32)
        hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        a = (hi - lo) / (2 * r + 1)
    return a


def _edges(region: np.ndarray, chain: np.ndarray) -> np.ndarray:
    """True next to a region or body-chain boundary (garment edges, silhouette, limb over torso), canvas res."""
    pelvis = chain == 9
    d0 = (region[1:] != region[:-1]) | ((chain[1:] != chain[:-1]) & ~pelvis[1:] & ~pelvis[:-1])
    d1 = (region[:, 1:] != region[:, :-1]) | (
        (chain[:, 1:] != chain[:, :-1]) & ~pelvis[:, 1:] & ~pelvis[:, :-1]
    )
    edge = np.zeros(region.shape, bool)
    edge[1:] |= d0
    edge[:-1] |= d0
    edge[:, 1:] |= d1
    edge[:, :-1] |= d1
    return edge


def _down(a: np.ndarray) -> np.ndarray:
    """Mean over _SS x _SS blocks (the anti-aliasing box filter) of a uint8 or bool array -> float32."""
    out = a[0::_SS, 0::_SS].astype(np.uint16)
    for i in range(_SS):
        for j in range(_SS):
            if i or j:
                out += a[i::_SS, j::_SS]
    return out.astype(np.float32) * np.float32(1.0 / (_SS * _SS))


def render(
    identity: Identity, keypoints: np.ndarray, style: str = "fashion", *, background_seed: int | None = None
) -> dict[str, np.ndarray]:
    """Paint ``identity`` in the pose ``keypoints`` ((18, 2) (y, x) pixels, -1 missing) for ``style``.

    Returns ``image`` uint8 (H, W, 3), ``keypoints`` float32 (18, 2) (the input with -1 where a joint is out
    of frame or hidden behind the body), ``parsing`` uint8 (H, W) LIP labels. The background is seeded by
    ``background_seed`` (default: derived from the identity and the pose, so equal inputs give equal images).
    """
    if style not in STYLES:
        raise ValueError(f"unknown puppets style {style!r}; expected one of {sorted(STYLES)}")
    kps = np.asarray(keypoints, np.float32)
    if kps.shape != (18, 2):
        raise ValueError(f"render: expected keypoints of shape (18, 2) as (y, x), got {kps.shape}")
    h, w = STYLES[style]
    view = _infer_view(kps, identity)
    canvas = _Canvas(h, w)
    _Painter(identity, view, canvas).paint()
    region_full = np.asarray(canvas.region)
    group = np.asarray(canvas.group)

    seed = background_seed
    if seed is None:
        seed = zlib.crc32(kps.tobytes()) ^ (identity.seed * 2654435761 & 0xFFFFFFFF)
    rng = _rng("background", int(seed), style)
    image = (_fashion_background if style == "fashion" else _market_background)(rng, h, w)
    if style == "fashion":
        _floor_shadow(image, view)

    # Colour only the person's bounding box (at _SS x, whole output pixels), then composite.
    rows = np.flatnonzero(region_full.any(axis=1))
    cols = np.flatnonzero(region_full.any(axis=0))
    if rows.size:
        y0, y1 = rows[0] // _SS, rows[-1] // _SS + 1
        x0, x1 = cols[0] // _SS, cols[-1] // _SS + 1
        region = region_full[y0 * _SS : y1 * _SS, x0 * _SS : x1 * _SS]
        mat = _REGION_MAT[region]
        colour = np.take(_material_lut(identity), mat, axis=0)  # background is black: premultiplied
        t = view.t * _SS
        for material, garment, anchor in (
            (_M_UPPER, identity.upper, view.neck),
            (_M_LOWER, identity.lower, view.midhip),
        ):
            ys, xs = np.nonzero(mat == material)
            if ys.size:
                ax = anchor[0] * _SS + (_SS - 1) / 2 - x0 * _SS
                ay = anchor[1] * _SS + (_SS - 1) / 2 - y0 * _SS
                u = (xs.astype(np.float32) - np.float32(ax)) / np.float32(t)
                v = (ys.astype(np.float32) - np.float32(ay)) / np.float32(t)
                colour[ys, xs] = np.clip(_pattern_colours(garment, u, v) + 0.5, 0, 255)
        chain = _CHAIN[group[y0 * _SS : y1 * _SS, x0 * _SS : x1 * _SS]]
        fg, cov = _down(colour), _down(region > 0)
        # volume: darken along boundaries, and towards the silhouette with light from the upper left
        shade = 1.0 - 0.28 * np.minimum(_box_blur(_down(_edges(region, chain)), 1) * 2.0, 1.0)
        r = max(1, round(view.t * 0.012))
        lit = _box_blur(np.pad(cov, ((r, 0), (r, 0)))[: cov.shape[0], : cov.shape[1]], r)
        shade *= 0.86 + 0.14 * lit
        fg *= shade[..., None]
        cov = cov[..., None]
        image[y0:y1, x0:x1] = fg + (1 - cov) * image[y0:y1, x0:x1]
    if style == "market":  # surveillance crops are soft
        image = (image + np.roll(image, 1, 0) + np.roll(image, -1, 0) + np.roll(image, 1, 1) + np.roll(image, -1, 1)
                 + 3 * image) / 8  # fmt: skip
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    parsing = _REGION_LIP[region_full[_SS // 2 :: _SS, _SS // 2 :: _SS]]
    return {"image": image, "keypoints": _visible_keypoints(kps, group, h, w), "parsing": parsing}


def _material_lut(identity: Identity) -> np.ndarray:
    skin = np.asarray(identity.skin, np.float32)
    lut = np.zeros((9, 3), np.float32)
    lut[_M_SKIN] = skin
    lut[_M_HAIR] = identity.hair_colour
    lut[_M_SHOE] = identity.shoes
    lut[_M_EYE] = (35, 28, 26)
    lut[_M_MOUTH] = skin * np.array([0.75, 0.5, 0.5], np.float32)
    lut[_M_BROW] = np.asarray(identity.hair_colour, np.float32) * 0.8
    return np.clip(lut + 0.5, 0, 255).astype(np.uint8)


def _floor_shadow(image: np.ndarray, view: _View) -> None:
    feet = [view.kp[k] for k in (10, 13) if np.all(np.isfinite(view.kp[k]))]
    h, w = image.shape[:2]
    if feet:
        fx, fy = np.mean(feet, axis=0)
        fy += 0.03 * view.t
        r0, r1 = int(max(fy - 0.1 * view.t, 0)), int(min(fy + 0.1 * view.t, h))
        if r1 <= r0:
            return
        yy = np.arange(r0, r1, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        d = ((xx - fx) / (0.2 * view.t)) ** 2 + ((yy - fy) / (0.03 * view.t)) ** 2
        image[r0:r1] *= (1 - 0.12 * np.exp(-d))[..., None]


def _visible_keypoints(kps: np.ndarray, group: np.ndarray, h: int, w: int) -> np.ndarray:
    """-1 for joints that are missing, out of frame, or covered by a body part drawn in front of them."""
    out = kps.copy()
    for k in range(18):
        y, x = kps[k]
        if y == -1 or x == -1 or not (0 <= y <= h - 1 and 0 <= x <= w - 1):
            out[k] = -1
            continue
        yi, xi = int(round(y)) * _SS, int(round(x)) * _SS
        seen = {int(g) for g in group[yi : yi + _SS, xi : xi + _SS].ravel()}
        if not any(g in _JOINT_GROUPS[k] or g in _NOT_OCCLUDERS for g in seen):
            out[k] = -1
    return out


def preview_grid(n: int = 16, style: str = "fashion", seed: int = 0, *, columns: int = 8) -> np.ndarray:
    """A uint8 grid of ``n`` rendered people (identity and pose seeds from ``seed``), for a first look."""
    h, w = STYLES[style]
    rows = -(-n // columns)
    cols = min(n, columns)
    grid = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i in range(n):
        ident = sample_identity(seed * 100_003 + i)
        pose = sample_pose(seed * 100_003 + i, style, identity=ident)
        img = render(ident, pose, style)["image"]
        r, c = divmod(i, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    return grid
