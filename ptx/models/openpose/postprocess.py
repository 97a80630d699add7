"""From full-resolution maps to people: peaks, limb scores, greedy matching, assembly, person choice.

Both references (pytorch-openpose ``Body.__call__`` and the PATN / Def-GAN ``compute_cordinates``) run the same
post-processing on the averaged maps (card ``shared/reference/openpose.md`` sections 6-7); this module is that
step, in float64 NumPy on the host, so its ``>=`` ties and ``>`` thresholds fall where the originals' do.
The per-pixel and per-pair work is vectorised; the greedy matching and the person assembly stay sequential
because each step depends on the previous one.

Conventions: ``heatmap`` (H, W, >= 18) and ``paf`` (H, W, 38) as the network's channels (0-based PAF pairs
below: x component first). A candidate row is ``(x, y, score, id)``; a person row has 20 entries: candidate ids
per joint (-1 missing), total score, joint count.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

NUM_JOINTS = 18
# Limbs in processing order (0-based joints) and their (x, y) PAF channels in the 38-channel output.
LIMB_JOINTS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)  # fmt: skip
LIMB_PAF = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11),
    (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27),
)  # fmt: skip
# Limbs from this index on (the shoulder-ear links) join existing people but never start one.
FIRST_NON_SEEDING_LIMB = 17


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The references' constants: peak threshold on the smoothed heatmap, per-sample PAF threshold, samples
    per limb, smoothing sigma, and the person filter (minimum joints, minimum mean score)."""

    peak: float = 0.1
    paf: float = 0.05
    samples: int = 10
    sigma: float = 3.0
    min_joints: int = 4
    min_mean_score: float = 0.4


@dataclasses.dataclass
class People:
    """Everything the post-processing found: ``candidates`` (N, 4) ``(x, y, score, id)``, ``subset`` (P, 20)
    person rows in creation order, ``connections[k]`` (n, 5) ``[idA, idB, score, i, j]`` for limb k (None when
    ``k`` is in ``special_k``: one end had no peak)."""

    candidates: np.ndarray
    subset: np.ndarray
    connections: list[np.ndarray | None]
    special_k: list[int]

    def keypoints(self, row: int) -> np.ndarray:
        """int64 (18, 2) ``(y, x)`` of one person row, -1 for missing joints."""
        ids = self.subset[row, :NUM_JOINTS].astype(np.int64)
        out = np.full((NUM_JOINTS, 2), -1, np.int64)
        present = ids >= 0
        out[present, 0] = self.candidates[ids[present], 1].astype(np.int64)
        out[present, 1] = self.candidates[ids[present], 0].astype(np.int64)
        return out

    def all_keypoints(self) -> list[np.ndarray]:
        """Every person's (18, 2) ``(y, x)`` keypoints, in the order the assembly created them."""
        return [self.keypoints(r) for r in range(len(self.subset))]

    def best_keypoints(self) -> np.ndarray:
        """The dataset scripts' choice: the person with the highest total score (first on a tie, not the one
        with most joints); all -1 when nobody was found."""
        if len(self.subset) == 0:
            return np.full((NUM_JOINTS, 2), -1, np.int64)
        return self.keypoints(int(np.argmax(self.subset[:, NUM_JOINTS])))


def find_peaks(heatmap: np.ndarray, th: Thresholds = Thresholds()) -> list[np.ndarray]:
    """Per joint, the local maxima of the smoothed map: float64 (n, 3) rows ``(x, y, raw score)``, row-major.

    A pixel is a peak when its Gaussian-smoothed value (sigma 3, scipy's 'reflect' border) is >= each of its
    four neighbours (0 outside the image; plateaus give several peaks) and > ``th.peak``; the score is the
    unsmoothed value there.
    """
    raw = np.asarray(heatmap, np.float64)[..., :NUM_JOINTS]
    smooth = ndimage.gaussian_filter(raw, sigma=(th.sigma, th.sigma, 0))
    padded = np.pad(smooth, ((1, 1), (1, 1), (0, 0)))
    is_peak = (
        (smooth >= padded[:-2, 1:-1])
        & (smooth >= padded[2:, 1:-1])
        & (smooth >= padded[1:-1, :-2])
        & (smooth >= padded[1:-1, 2:])
        & (smooth > th.peak)
    )
    peaks = []
    for joint in range(NUM_JOINTS):
        ys, xs = np.nonzero(is_peak[..., joint])
        peaks.append(np.stack([xs, ys, raw[ys, xs, joint]], axis=-1).astype(np.float64))
    return peaks


def score_limb(
    a: np.ndarray, b: np.ndarray, paf_xy: np.ndarray, image_height: int, th: Thresholds = Thresholds()
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every (i, j) pair of candidates ``a`` (nA, >=2) and ``b`` (nB, >=2) as a limb.

    The PAF pair ``paf_xy`` (H, W, 2) is sampled at ``th.samples`` points evenly spaced from A to B (rounded to
    pixels) and projected on the unit vector A->B; the score is their mean plus the distance prior
    ``min(0.5 * H / |AB| - 1, 0)``. Returns (score (nA, nB), accepted (nA, nB)): accepted when more than 80%
    of the samples exceed ``th.paf`` and the score is positive. Float operations in the references' order.
    """
    ax, ay = a[:, None, 0], a[:, None, 1]
    bx, by = b[None, :, 0], b[None, :, 1]
    vx, vy = bx - ax, by - ay
    norm = np.maximum(np.sqrt(vx * vx + vy * vy), 0.001)  # pytorch-openpose's guard; no effect on results
    ux, uy = vx / norm, vy / norm
    t = np.arange(th.samples, dtype=np.float64)[:, None, None] / (th.samples - 1)
    # Sample points: A + t (B - A); rounding is unambiguous (fractions are multiples of 1/9, never .5).
    xs = np.rint(ax + t * vx).astype(np.int64)
    ys = np.rint(ay + t * vy).astype(np.int64)
    along = paf_xy[ys, xs, 0] * ux + paf_xy[ys, xs, 1] * uy  # (samples, nA, nB)
    total = np.zeros(along.shape[1:])
    for s in along:  # sequential sum, as Python's sum() adds
        total = total + s
    score = total / th.samples + np.minimum(0.5 * image_height / norm - 1, 0)
    hits = np.count_nonzero(along > th.paf, axis=0)
    return score, (hits > 0.8 * th.samples) & (score > 0)


def match_limb(
    a: np.ndarray,
    b: np.ndarray,
    ids_a: np.ndarray,
    ids_b: np.ndarray,
    score: np.ndarray,
    accepted: np.ndarray,
) -> np.ndarray:
    """Greedy one-to-one matching: pairs by decreasing score (stable), each candidate used once, stopping at
    ``min(nA, nB)`` connections. Returns (n, 5) rows ``[idA, idB, score, i, j]``."""
    ii, jj = np.nonzero(accepted)  # i-major, the references' loop order
    order = np.argsort(-score[ii, jj], kind="stable")
    used_a, used_b, rows = set(), set(), []
    limit = min(len(a), len(b))
    for i, j in zip(ii[order], jj[order]):
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        rows.append([ids_a[i], ids_b[j], score[i, j], i, j])
        if len(rows) >= limit:
            break
    return np.asarray(rows, np.float64).reshape(-1, 5)


def _add_joint(row: np.ndarray, joint_b: int, id_b: float, candidates: np.ndarray, link_score: float) -> None:
    row[joint_b] = id_b
    row[-1] += 1
    row[-2] += candidates[int(id_b), 2] + link_score


def assemble(
    candidates: np.ndarray, connections: list[np.ndarray | None], th: Thresholds = Thresholds()
) -> np.ndarray:
    """Connections -> person rows (P, 20), as the references grow them limb by limb (card section 6).

    A connection joins the row holding its A or B candidate; touching two disjoint rows merges them; otherwise
    it starts a row (not for the shoulder-ear limbs). Rows with < 4 joints or mean score < 0.4 are dropped.
    The references index a two-slot list here and raise on a third matching row; this keeps the first two.
    """
    subset = np.zeros((0, NUM_JOINTS + 2))
    for k, conn in enumerate(connections):
        if conn is None:
            continue
        joint_a, joint_b = LIMB_JOINTS[k]
        for id_a, id_b, link, _, _ in conn:
            hits = np.flatnonzero((subset[:, joint_a] == id_a) | (subset[:, joint_b] == id_b))[:2]
            if len(hits) == 1:
                row = subset[hits[0]]
                if row[joint_b] != id_b:
                    _add_joint(row, joint_b, id_b, candidates, link)
            elif len(hits) == 2:
                r1, r2 = hits
                shared = (subset[r1, :NUM_JOINTS] >= 0) & (subset[r2, :NUM_JOINTS] >= 0)
                if not shared.any():
                    subset[r1, :NUM_JOINTS] += subset[r2, :NUM_JOINTS] + 1
                    subset[r1, NUM_JOINTS:] += subset[r2, NUM_JOINTS:]
                    subset[r1, NUM_JOINTS] += link
                    subset = np.delete(subset, r2, axis=0)
                else:  # unlike the one-row case, the references do not check the slot here
                    _add_joint(subset[r1], joint_b, id_b, candidates, link)
            elif k < FIRST_NON_SEEDING_LIMB:
                row = np.full(NUM_JOINTS + 2, -1.0)
                row[joint_a], row[joint_b] = id_a, id_b
                row[-1] = 2
                row[-2] = 0 + candidates[int(id_a), 2] + candidates[int(id_b), 2] + link
                subset = np.vstack([subset, row])
    count, total = subset[:, -1], subset[:, -2]
    keep = ~((count < th.min_joints) | (total / count < th.min_mean_score))
    return subset[keep]


def find_people(
    heatmap: np.ndarray, paf: np.ndarray, image_height: int | None = None, th: Thresholds = Thresholds()
) -> People:
    """Full post-processing of full-resolution maps (H, W, 19) and (H, W, 38), both read as float64.

    ``image_height`` is the original image's height used by the distance prior (default: the maps' height).
    """
    heatmap = np.asarray(heatmap, np.float64)
    paf = np.asarray(paf, np.float64)
    height = int(image_height if image_height is not None else heatmap.shape[0])
    peaks = find_peaks(heatmap, th)
    counts = [len(p) for p in peaks]
    first_id = np.concatenate([[0], np.cumsum(counts)])
    candidates = np.concatenate(
        [np.concatenate([p, (first_id[j] + np.arange(len(p)))[:, None]], axis=1) for j, p in enumerate(peaks)]
    )
    connections: list[np.ndarray | None] = []
    special_k = []
    for k, ((ja, jb), (cx, cy)) in enumerate(zip(LIMB_JOINTS, LIMB_PAF)):
        a, b = peaks[ja], peaks[jb]
        if len(a) == 0 or len(b) == 0:
            special_k.append(k)
            connections.append(None)
            continue
        score, accepted = score_limb(a, b, paf[..., [cx, cy]], height, th)
        ids_a = first_id[ja] + np.arange(len(a))
        ids_b = first_id[jb] + np.arange(len(b))
        connections.append(match_limb(a, b, ids_a, ids_b, score, accepted))
    subset = assemble(candidates, connections, th)
    return People(candidates, subset, connections, special_k)


def map_to_cord(heatmap: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """The dataset script before pose-gan 0542902: per joint, the first (row-major) pixel holding the map's
    global maximum if it exceeds ``threshold``; no smoothing, no grouping. int64 (18, 2) ``(y, x)``."""
    maps = np.asarray(heatmap, np.float64)[..., :NUM_JOINTS]
    out = np.full((NUM_JOINTS, 2), -1, np.int64)
    for joint in range(NUM_JOINTS):
        m = maps[..., joint]
        hit = np.flatnonzero((m == m.max()) & (m > threshold))
        if len(hit):
            out[joint] = np.unravel_index(hit[0], m.shape)
    return out
