"""ptx.data.puppets: determinism, shapes, keypoints vs image, parsing where the body is, styles, speed sanity."""

import numpy as np
import pytest

from ptx.data import keypoints as K
from ptx.data import puppets as P


@pytest.fixture(scope="module")
def samples():
    out = {}
    for style in ("fashion", "market"):
        out[style] = []
        for i in range(12):
            ident = P.sample_identity(i)
            pose = P.sample_pose(100 + i, style, identity=ident)
            out[style].append((ident, pose, P.render(ident, pose, style)))
    return out


def test_identity_and_pose_are_pure_functions_of_their_seeds():
    assert P.sample_identity(5) == P.sample_identity(5)
    assert P.sample_identity(5) != P.sample_identity(6)
    hash(P.sample_identity(5))  # frozen: usable as a dict key
    np.testing.assert_array_equal(P.sample_pose(3, "market"), P.sample_pose(3, "market"))
    assert not np.array_equal(P.sample_pose(3, "market"), P.sample_pose(4, "market"))


def test_render_is_bit_identical_for_equal_inputs():
    ident, pose = P.sample_identity(9), P.sample_pose(9, "fashion")
    a, b = P.render(ident, pose, "fashion"), P.render(ident, pose, "fashion")
    for key in ("image", "keypoints", "parsing"):
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("style", ["fashion", "market"])
def test_shapes_dtypes_and_keypoints_in_frame(samples, style):
    h, w = P.STYLES[style]
    for _, pose, r in samples[style]:
        assert r["image"].shape == (h, w, 3) and r["image"].dtype == np.uint8
        assert r["parsing"].shape == (h, w) and r["parsing"].dtype == np.uint8
        kp = r["keypoints"]
        assert kp.shape == (18, 2) and kp.dtype == np.float32
        present = K.is_present(kp)
        assert np.all(kp[~present] == -1)
        vis = kp[present]
        assert np.all(vis >= 0) and np.all(vis[:, 0] <= h - 1) and np.all(vis[:, 1] <= w - 1)
        # rendered keypoints are the pose's, minus hidden ones
        np.testing.assert_array_equal(kp[present], pose[present])
        assert present.sum() >= 6


def test_parsing_classes_where_the_body_is(samples):
    for ident, _, r in samples["fashion"]:
        kp, parsing = r["keypoints"], r["parsing"]
        labels = set(np.unique(parsing).tolist())
        assert labels <= set(range(20)) and 0 in labels and 5 in labels  # background, upper clothes
        assert labels & {9, 12}  # pants or skirt
        if kp[0, 0] >= 0:  # the nose sits on the face
            y, x = kp[0].astype(int)
            assert parsing[y, x] == 13
        for wri in (4, 7):  # a visible wrist is on an arm (hands may cross) or a long sleeve
            if kp[wri, 0] >= 0:
                y, x = kp[wri].astype(int)
                assert parsing[y, x] in (14, 15, 5), (ident.upper.kind, parsing[y, x])
        person = parsing > 0
        assert 0.05 < person.mean() < 0.8
        # the person differs from the background colour
        img = r["image"].astype(np.float32)
        assert np.abs(img[person].mean(0) - img[~person].mean(0)).max() > 5 or img[person].std() > 20


def test_views_hide_the_far_face_points():
    views = {"front": 0, "back": 0, "side": 0}
    for i in range(60):
        kp = P.sample_pose(i, "market")
        nose, eyes, ears = kp[0, 0] >= 0, (kp[14:16, 0] >= 0).sum(), (kp[16:18, 0] >= 0).sum()
        if nose and eyes == 2:
            views["front"] += 1
        elif not nose and eyes == 0:
            views["back"] += 1
            assert ears >= 1
        elif nose and eyes == 1:
            views["side"] += 1
    assert all(v > 3 for v in views.values()), views


def test_flipped_pose_renders_the_mirror_parsing():
    ident = P.sample_identity(2)
    for seed in range(4):
        pose = P.sample_pose(seed, "fashion", identity=ident)
        r = P.render(ident, pose, "fashion", background_seed=0)
        rf = P.render(ident, K.flip_keypoints(pose, 176), "fashion", background_seed=0)
        mirrored = K.LIP_FLIP_PERM[r["parsing"][:, ::-1]]
        agree = (mirrored == rf["parsing"]).mean()
        assert agree > 0.97, agree


def test_render_survives_missing_joints():
    ident = P.sample_identity(0)
    rng = np.random.default_rng(0)
    for i in range(10):
        pose = P.sample_pose(i, "fashion").copy()
        pose[rng.random(18) < 0.4] = -1
        r = P.render(ident, pose, "fashion")
        assert r["image"].shape == (256, 176, 3)
    empty = P.render(ident, np.full((18, 2), -1, np.float32), "market")
    assert np.all(empty["keypoints"] == -1)
    odd = P.sample_pose(0, "market").copy()
    odd[3] = np.nan
    odd[4] = 1e6
    r = P.render(ident, odd, "market")
    assert r["keypoints"][3, 0] == -1 and r["keypoints"][4, 0] == -1


def test_poses_have_anatomical_bone_lengths():
    # Orthographic projection only shortens bones: each 2D bone is at most its 3D length (in units of the
    # standing height T, recovered from the torso, which stays nearly upright).
    bones = {(2, 3): P.UPPER_ARM, (3, 4): P.FOREARM, (8, 9): P.THIGH, (9, 10): P.SHIN}
    for i in range(40):
        ident = P.sample_identity(i)
        kp = P.sample_pose(i, "fashion", identity=ident)
        t = np.hypot(*(kp[1] - (kp[8] + kp[11]) / 2)) / P.TORSO
        for (a, b), length in bones.items():
            for off in (0, 3):  # right and left limb
                bone = np.hypot(*(kp[a + off] - kp[b + off]))
                assert bone <= length * t * ident.legs * 1.06 + 2, (i, a + off, b + off, bone, length * t)
        # shoulders are a shoulder-width apart at most, hips below the neck
        assert np.hypot(*(kp[2] - kp[5])) <= 2 * P.SHOULDER * ident.shoulders * t * 1.05 + 2
        assert kp[8, 0] > kp[1, 0] and kp[11, 0] > kp[1, 0]


def test_bad_input_errors():
    with pytest.raises(ValueError, match="style"):
        P.sample_pose(0, "street")
    with pytest.raises(ValueError, match="18, 2"):
        P.render(P.sample_identity(0), np.zeros((17, 2)), "fashion")


def test_identities_vary():
    ids = [P.sample_identity(i) for i in range(40)]
    assert len({i.upper.pattern for i in ids} | {i.lower.pattern for i in ids}) >= 6
    assert len({i.hair_style for i in ids}) >= 4 and len({i.skin for i in ids}) >= 20
    assert len({i.lower.kind for i in ids}) >= 3 and len({i.upper.kind for i in ids}) >= 3


def test_preview_grid():
    g = P.preview_grid(3, "market", seed=1, columns=2)
    assert g.shape == (256, 128, 3) and g.dtype == np.uint8


def test_edges_are_anti_aliased(samples):
    # A background pixel touching the person is partly covered by it (2x supersampling): its colour is off the
    # plain background colour a few pixels further out.
    # The parsing takes each pixel's lower-right sub-sample, so the background-labelled pixels just right of the
    # person are the partly covered ones; mirror the images so that they sit left of it.
    blended = total = 0
    for _, _, r in samples["fashion"][:4]:
        person = r["parsing"][:, ::-1] > 0
        img = r["image"][:, ::-1].astype(np.int32)
        ys, xs = np.nonzero(~person[:, 3:-1] & person[:, 4:] & ~person[:, :-4])
        xs = xs + 3
        diff = np.abs(img[ys, xs] - img[ys, xs - 3]).max(axis=1)
        blended += int((diff > 6).sum())
        total += len(ys)
    assert total > 100 and blended / total > 0.4, (blended, total)


def test_side_views_hide_some_far_limb_joints():
    hidden = 0
    sides = 0
    for i in range(80):
        ident = P.sample_identity(i)
        pose = P.sample_pose(i, "market", identity=ident)
        if pose[0, 0] >= 0 and (pose[14:16, 0] >= 0).sum() == 1:  # profile
            sides += 1
            r = P.render(ident, pose, "market")
            in_frame = (pose[:, 0] >= 0) & (pose[:, 0] <= 127) & (pose[:, 1] >= 0) & (pose[:, 1] <= 63)
            hidden += int(((r["keypoints"][:14, 0] == -1) & in_frame[:14]).sum())
    assert sides >= 5 and hidden >= sides  # on average at least one body joint hidden per profile view


def test_same_identity_keeps_its_colours_across_poses():
    ident = P.sample_identity(21)
    means = []
    for seed in range(3):
        r = P.render(ident, P.sample_pose(seed, "fashion", identity=ident), "fashion")
        means.append(r["image"][r["parsing"] == 5].astype(np.float32).mean(0))  # upper clothes
    assert max(np.abs(m - means[0]).max() for m in means) < 25
