"""Readers of the originals' annotation CSVs, pair CSVs, .lst files and img_highres names."""

import json

import numpy as np
import pytest

from ptx.data import annotations as ann

HEADER = "name:keypoints_y:keypoints_x"
YS = [10, 20, -1, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180]
XS = [5, 6, 7, -1, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]


def _row(name, ys=YS, xs=XS):
    return f"{name}:{json.dumps(ys)}:{json.dumps(xs)}"


def test_read_annotations_values_and_missing(tmp_path):
    path = tmp_path / "fasion-annotation-train.csv"
    path.write_text("\n".join([HEADER, _row("a.jpg"), "", _row("b.jpg", YS[::-1], XS)]) + "\n")
    out = ann.read_annotations(path)
    assert list(out) == ["a.jpg", "b.jpg"]
    a = out["a.jpg"]
    assert a.dtype == np.float32 and a.shape == (18, 2)
    assert a[0].tolist() == [10, 5] and a[17].tolist() == [180, 22]
    # either coordinate -1 -> the whole joint is missing
    assert a[2].tolist() == [-1, -1] and a[3].tolist() == [-1, -1]


def test_read_annotations_column_order_from_header(tmp_path):
    path = tmp_path / "market-annotation-test.csv"
    path.write_text(f"keypoints_x:name:keypoints_y\n{json.dumps(XS)}:p.jpg:{json.dumps(YS)}\n")
    assert ann.read_annotations(path)["p.jpg"][0].tolist() == [10, 5]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("a.jpg:[1, 2]", "expected 3 ':'-separated fields"),
        (_row("a.jpg", YS[:17]), "expected 18 keypoints"),
        (_row("a.jpg", YS, [*XS[:17], 3.5]), "3.5"),
        (_row("a.jpg", YS, [*XS[:17], "x"]), "'x'"),
        ("a.jpg:not json:[1]", "keypoints_y"),
        (_row(""), "empty image name"),
        ("a.jpg:" + str([float("inf")] + YS[1:]).replace("inf", "Infinity") + f":{XS}", "inf.*finite"),
        ("a.jpg:" + str([float("nan")] + YS[1:]).replace("nan", "NaN") + f":{XS}", "nan.*finite"),
    ],
)
def test_read_annotations_bad_rows_name_file_and_line(tmp_path, line, expected):
    path = tmp_path / "fasion-annotation-test.csv"
    path.write_text(f"{HEADER}\n{_row('ok.jpg')}\n{line}\n")
    with pytest.raises(ann.AnnotationError, match=expected) as e:
        ann.read_annotations(path)
    assert str(path) in str(e.value) and "line 3" in str(e.value)


def test_read_annotations_bad_header_missing_file_and_conflicting_duplicate(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("name,keypoints_y,keypoints_x\n")
    with pytest.raises(ann.AnnotationError, match="line 1.*lacks column"):
        ann.read_annotations(path)
    with pytest.raises(ann.AnnotationError, match="not found.*nope.csv"):
        ann.read_annotations(tmp_path / "nope.csv")
    path.write_text(f"{HEADER}\n{_row('a.jpg')}\n{_row('a.jpg')}\n{_row('a.jpg', YS[::-1])}\n")
    with pytest.raises(ann.AnnotationError, match="line 4.*annotated twice"):
        ann.read_annotations(path)


def test_read_pairs(tmp_path):
    path = tmp_path / "fasion-pairs-train.csv"
    path.write_text(",from,to,extra\n0,a.jpg,b.jpg,z\n\n1,b.jpg,a.jpg,z\n")
    assert ann.read_pairs(path) == [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg")]
    path.write_text("from,to\na.jpg,b.jpg\nc.jpg\n")
    with pytest.raises(ann.AnnotationError, match=r"line 3: expected 2 comma-separated fields"):
        ann.read_pairs(path)
    path.write_text("source,target\na.jpg,b.jpg\n")
    with pytest.raises(ann.AnnotationError, match="lacks column 'from' or 'to'"):
        ann.read_pairs(path)
    path.write_text("from,to\na.jpg,\n")
    with pytest.raises(ann.AnnotationError, match="line 2: empty image name"):
        ann.read_pairs(path)


def test_read_lst_keeps_jpg_and_counts_the_rest(tmp_path):
    path = tmp_path / "train.lst"
    path.write_text(
        "fashionMENDenimid0000000101_1front.jpg\nREADME\n\nfoo.png\nfashionXid0000000201_1front.jpg\n"
    )
    skipped = ann.Skipped()
    names = ann.read_lst(path, skipped)
    assert names == ["fashionMENDenimid0000000101_1front.jpg", "fashionXid0000000201_1front.jpg"]
    assert sum(skipped.counts.values()) == 2 and "foo.png" in skipped.summary()


def test_highres_name_matches_the_originals_mangling():
    name = ann.highres_name("WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg")
    assert name == "fashionWOMENBlouses_Shirtsid0000000102_1front.jpg"
    assert (
        ann.highres_name("MEN/Denim/id_00000080/01_7_additional.jpg")
        == "fashionMENDenimid0000008001_7additional.jpg"
    )
    with pytest.raises(ann.AnnotationError, match="expected the layout"):
        ann.highres_name("MEN/id_00000080/01_7_additional.jpg")


def test_index_highres_tree(tmp_path):
    f = tmp_path / "img_highres" / "MEN" / "Denim" / "id_00000080" / "01_3_back.jpg"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"")
    assert ann.index_highres_tree(tmp_path / "img_highres") == {"fashionMENDenimid0000008001_3back.jpg": f}


def test_edge_name_and_identity():
    # SCA-GAN: trainE/diff/<name without 'fashion', .png>
    assert ann.edge_file_name("fashionMENDenimid0000008001_1front.jpg") == "MENDenimid0000008001_1front.png"
    assert ann.identity_of("fashionMENDenimid0000008001_1front.jpg") == "fashionMENDenimid00000080"
    assert ann.identity_of("0002_c1s1_000451_03.jpg") == "0002"
