"""convert_dataset on small VOC / VIA / YOLO folders written by the tests, odd cases included."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from PIL import Image

from scratchlab.data.check import check_dataset
from scratchlab.data.convert import CONVERT_HELP, ConvertError, convert_dataset, format_summary
from tests.data.test_check import errors


def _image(path: Path, w: int, h: int, orientation: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (w, h), (120, 60, 30))
    if orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(path, exif=exif.tobytes())


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def _anns_by_file(coco: dict) -> dict[str, list[dict]]:
    names = {i["id"]: i["file_name"] for i in coco["images"]}
    out: dict[str, list[dict]] = {n: [] for n in names.values()}
    for a in coco["annotations"]:
        out[names[a["image_id"]]].append(a)
    return out


# ---------------------------------------------------------------------------------------------- VOC
def _voc_xml(filename: str, objects: list[tuple[str, tuple, int]], size: tuple[int, int] | None) -> str:
    size_xml = (
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    )
    objs = "".join(
        f"<object><name>{name}</name><difficult>{diff}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, diff in objects
    )
    return f"<annotation><filename>{filename}</filename>{size_xml}{objs}</annotation>"


def _voc(root: Path, ann: str = "annotations", img: str = "images") -> Path:
    (root / ann).mkdir(parents=True)
    _image(root / img / "a.jpg", 100, 80)
    _image(root / img / "b.png", 60, 40)
    _image(root / img / "c.jpg", 50, 30)
    _image(root / img / "phone.jpg", 40, 20, orientation=6)  # displayed 20 wide, 40 high
    (root / ann / "a.xml").write_text(
        _voc_xml(
            "a.jpg",
            [
                ("  red panda \n", (11, 21, 50, 60), 0),  # names with spaces survive, whitespace is stripped
                ("cat", (1, 1, 100, 80), 1),  # whole image, difficult
                ("cat", (90, 70, 130, 95), 0),  # sticks out: clipped
            ],
            size=None,
        )
    )  # <size> missing
    (root / ann / "b.xml").write_text(_voc_xml("b.png", [("dog", (5.5, 6, 20, 30), 0)], size=(0, 0)))
    (root / ann / "c.xml").write_text(_voc_xml("c.jpg", [], size=(50, 30)))  # no objects
    (root / ann / "phone.xml").write_text(_voc_xml("phone.jpg", [("cat", (2, 3, 10, 30), 0)], size=(40, 20)))
    return root


@pytest.mark.parametrize("layout", [("annotations", "images"), ("Annotations", "JPEGImages")])
def test_voc_both_layouts(tmp_path, layout):
    src = _voc(tmp_path / "src", *layout)
    before = _snapshot(src)
    summary = convert_dataset("voc", src, tmp_path / "out")
    assert _snapshot(src) == before  # nothing written into SRC
    assert summary["files"] == [str(tmp_path / "out" / "annotations.json")]
    assert summary["image_root"] == str((src / layout[1]).resolve())
    assert (summary["images"], summary["annotations"]) == (4, 5)
    assert summary["categories"] == ["cat", "dog", "red panda"]
    coco = _load(summary["files"][0])
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3]
    assert [i["file_name"] for i in coco["images"]] == ["a.jpg", "b.png", "c.jpg", "phone.jpg"]
    sizes = {i["file_name"]: (i["width"], i["height"]) for i in coco["images"]}
    assert sizes == {"a.jpg": (100, 80), "b.png": (60, 40), "c.jpg": (50, 30), "phone.jpg": (20, 40)}
    by = _anns_by_file(coco)
    cat_of = {c["id"]: c["name"] for c in coco["categories"]}
    a = sorted(by["a.jpg"], key=lambda x: x["id"])
    assert [cat_of[x["category_id"]] for x in a] == ["red panda", "cat", "cat"]
    assert a[0]["bbox"] == [10, 20, 40, 40]  # xmin-1, ymin-1, xmax-xmin+1, ymax-ymin+1
    assert a[1]["bbox"] == [0, 0, 100, 80] and a[1]["difficult"] == 1 and a[1]["iscrowd"] == 0
    assert a[2]["bbox"] == [89, 69, 11, 11]  # clipped to the 100x80 image
    assert "difficult" not in a[0] and a[0]["area"] == 1600 and "segmentation" not in a[0]
    assert by["b.png"][0]["bbox"] == [4.5, 5, 15.5, 25]
    assert summary["box_only"] and "box-only" in format_summary(summary)
    assert by["c.jpg"] == []
    assert by["phone.jpg"][0]["bbox"] == [1, 2, 9, 28]
    assert any("phone.xml" in w and "EXIF orientation 6" in w for w in summary["warnings"])
    assert not errors(check_dataset(summary["files"][0], summary["image_root"]))


def test_voc_finds_image_by_stem_when_filename_is_stale(tmp_path):
    src = tmp_path / "src"
    _image(src / "images" / "x.jpg", 30, 30)
    (src / "annotations").mkdir()
    (src / "annotations" / "x.xml").write_text(_voc_xml("old_name.jpg", [("a", (1, 1, 5, 5), 0)], None))
    summary = convert_dataset("voc", src, tmp_path / "out")
    assert _load(summary["files"][0])["images"][0]["file_name"] == "x.jpg"


def test_voc_class_name_fills_empty_names(tmp_path):
    src = tmp_path / "src"
    _image(src / "images" / "x.jpg", 30, 30)
    (src / "annotations").mkdir()
    (src / "annotations" / "x.xml").write_text(
        _voc_xml("x.jpg", [(" ", (1, 1, 5, 5), 0), ("b", (1, 1, 5, 5), 0)], None)
    )
    assert convert_dataset("voc", src, tmp_path / "out", class_name="a")["categories"] == ["a", "b"]


def test_voc_missing_image_names_the_xml(tmp_path):
    src = _voc(tmp_path / "src")
    (src / "images" / "b.png").unlink()
    with pytest.raises(ConvertError, match=r"b\.xml: no image found"):
        convert_dataset("voc", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "xml, match",
    [
        (
            "<annotation><object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>x</xmax>"
            "<ymax>5</ymax></bndbox></object></annotation>",
            r"bad\.xml: object 1 \('a'\): <xmax>: 'x' is not a number",
        ),
        (
            "<annotation><object><name>a</name></object></annotation>",
            r"bad\.xml: object 1 \('a'\): no <bndbox>",
        ),
        (
            "<annotation><object><name> </name></object></annotation>",
            r"bad\.xml: object 1: missing or empty <name>; pass --class-name NAME",
        ),
        (
            "<annotation><object><name>a</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>3</xmax>"
            "<ymax>5</ymax></bndbox></object></annotation>",
            r"bad\.xml: object 1 \('a'\): inverted box",
        ),
        ("<annotation><unclosed></annotation>", r"bad\.xml: not a readable XML file"),
        ("<other/>", r"bad\.xml: root element is <other>"),
    ],
)
def test_voc_bad_xml_names_file_and_object(tmp_path, xml, match):
    src = tmp_path / "src"
    _image(src / "images" / "bad.jpg", 10, 10)
    (src / "annotations").mkdir()
    (src / "annotations" / "bad.xml").write_text(xml)
    with pytest.raises(ConvertError, match=match):
        convert_dataset("voc", src, tmp_path / "out")


def test_out_inside_src_is_refused(tmp_path):
    src = _voc(tmp_path / "src")
    before = _snapshot(src)
    with pytest.raises(ConvertError, match="inside the source folder"):
        convert_dataset("voc", src, src / "coco")
    assert _snapshot(src) == before


# ---------------------------------------------------------------------------------------------- VIA
def _via_project(src: Path, regions: list[dict], attrs: dict | None = None, name: str = "via.json") -> Path:
    _image(src / "p.jpg", 100, 60)
    _image(src / "q.jpg", 30, 30)
    meta = {
        "p.jpg12345": {"filename": "p.jpg", "size": 12345, "regions": regions, "file_attributes": {}},
        "q.jpg999": {"filename": "q.jpg", "size": 999, "regions": [], "file_attributes": {}},
    }
    project = {
        "_via_settings": {},
        "_via_img_metadata": meta,
        "_via_attributes": {
            "region": attrs if attrs is not None else {"species": {}, "colour": {}},
            "file": {},
        },
        # what VIA 2.0.10+ "Save project" writes (and what made it look like a VIA 3 file)
        "_via_data_format_version": "2.0.10",
        "_via_image_id_list": list(meta),
    }
    (src / name).write_text(json.dumps(project))
    return src


def test_via3_project_is_refused_saying_how_to_export(tmp_path):
    _image(tmp_path / "src" / "p.jpg", 10, 10)
    (tmp_path / "src" / "via3.json").write_text(
        json.dumps({"project": {"data_format_version": "3.1.1"}, "metadata": {}})
    )
    with pytest.raises(ConvertError, match="VIA 3 project"):
        convert_dataset("via", tmp_path / "src" / "via3.json", tmp_path / "out")


def _region(shape: dict, species: str | dict = "cat", colour: str = "grey") -> dict:
    # "species" first: without a project attribute list, the first key met is the class.
    return {"shape_attributes": shape, "region_attributes": {"species": species, "colour": colour}}


VIA_REGIONS = [
    _region({"name": "polygon", "all_points_x": [0, 10, 0], "all_points_y": [0, 0, 10]}),
    _region({"name": "rect", "x": 5, "y": 6, "width": 10, "height": 20}, species=" dog "),
    _region({"name": "circle", "cx": 30, "cy": 30, "r": 5}, colour="brown"),
    _region({"name": "ellipse", "cx": 60, "cy": 30, "rx": 8, "ry": 4, "theta": 0}),
    _region({"name": "polyline", "all_points_x": [90, 120, 90], "all_points_y": [50, 55, 70]}),
    _region({"name": "point", "cx": 3, "cy": 3}),
]


def test_via_shapes_to_polygons_boxes_and_areas(tmp_path):
    src = _via_project(tmp_path / "src", VIA_REGIONS)
    before = _snapshot(src)
    summary = convert_dataset("via", src, tmp_path / "out")
    assert _snapshot(src) == before
    assert summary["image_root"] == str(src.resolve())
    assert (summary["images"], summary["annotations"], summary["categories"]) == (2, 5, ["cat", "dog"])
    assert any("region 6" in w and "point" in w for w in summary["warnings"])
    coco = _load(summary["files"][0])
    anns = sorted(_anns_by_file(coco)["p.jpg"], key=lambda a: a["id"])
    poly, rect, circle, ellipse, polyline = anns
    assert poly["bbox"] == [0, 0, 10, 10] and poly["area"] == 50
    assert poly["segmentation"] == [[0, 0, 10, 0, 0, 10]]
    assert rect["bbox"] == [5, 6, 10, 20] and rect["area"] == 200 and "segmentation" not in rect  # box-only
    assert rect["category_id"] == 2  # "dog", stripped; categories sorted by name
    assert circle["bbox"] == pytest.approx([25, 25, 10, 10], abs=0.01)
    assert circle["area"] == pytest.approx(math.pi * 25, rel=0.01)
    assert len(circle["segmentation"][0]) == 64
    assert ellipse["bbox"] == pytest.approx([52, 26, 16, 8], abs=0.01)
    assert polyline["bbox"] == [90, 50, 10, 10]  # clipped to the 100 px wide image
    assert _anns_by_file(coco)["q.jpg"] == []
    assert summary["without_mask"] == 1 and not summary["box_only"]
    assert "1 of 5 annotations are box-only" in format_summary(summary)
    problems = check_dataset(summary["files"][0], summary["image_root"])
    assert [(p.record, p.severity) for p in problems] == [("image id 2", "warning")]  # q.jpg: no regions


def test_via_attribute_choice(tmp_path):
    src = _via_project(tmp_path / "src", VIA_REGIONS[:3])
    summary = convert_dataset("via", src / "via.json", tmp_path / "out", attribute="colour")
    assert summary["categories"] == ["brown", "grey"]


def test_via_plain_export_with_v1_region_dict_and_checkbox_class(tmp_path):
    src = tmp_path / "src"
    _image(src / "images" / "r.png", 50, 50)  # images/ beside the JSON is found too
    regions = {
        "1": _region({"name": "rect", "x": 1, "y": 1, "width": 4, "height": 4}, species={"owl": True}),
        "0": _region({"name": "rect", "x": 10, "y": 10, "width": 5, "height": 5}, species={"bat": True}),
    }
    (src / "export.json").write_text(
        json.dumps({"r.png50": {"filename": "r.png", "size": 50, "regions": regions}})
    )
    summary = convert_dataset("via", src, tmp_path / "out")
    assert summary["image_root"] == str((src / "images").resolve())
    coco = _load(summary["files"][0])
    assert summary["categories"] == ["bat", "owl"]
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2]  # region "0" first


@pytest.mark.parametrize(
    "regions, attrs, match",
    [
        (
            [_region({"name": "rect", "x": 1, "y": 1, "width": 4, "height": 4}, species="")],
            None,
            r"image 'p\.jpg' region 1: no class: region attribute 'species'",
        ),
        (
            [_region({"name": "polygon", "all_points_x": [1, 2], "all_points_y": [1]})],
            None,
            r"image 'p\.jpg' region 1: polygon needs all_points_x and all_points_y",
        ),
        (
            [_region({"name": "rect", "x": "a", "y": 1, "width": 4, "height": 4})],
            None,
            r"image 'p\.jpg' region 1: rect 'x': 'a' is not a number",
        ),
        (
            [
                {
                    "shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 4, "height": 4},
                    "region_attributes": {},
                }
            ],
            {},
            r"image 'p\.jpg' region 1: no region attribute holds a class name; pass --class-name NAME",
        ),
        (
            [
                _region(
                    {"name": "rect", "x": 1, "y": 1, "width": 4, "height": 4},
                    species={"owl": True, "bat": True},
                )
            ],
            None,
            r"image 'p\.jpg' region 1: attribute 'species' has 2 ticked options",
        ),
    ],
)
def test_via_bad_regions_name_image_and_region(tmp_path, regions, attrs, match):
    src = _via_project(tmp_path / "src", regions, attrs)
    with pytest.raises(ConvertError, match=match):
        convert_dataset("via", src, tmp_path / "out")


def _balloon(src: Path) -> Path:
    """The layout of Detectron2's balloon tutorial: a plain VIA export whose regions carry no attributes."""
    _image(src / "b1.jpg", 80, 60)
    _image(src / "b2.jpg", 40, 40)
    polygon = {"name": "polygon", "all_points_x": [10, 50, 30], "all_points_y": [10, 10, 40]}
    data = {
        "b1.jpg1234": {
            "fileref": "",
            "size": 1234,
            "filename": "b1.jpg",
            "base64_img_data": "",
            "file_attributes": {},
            "regions": {"0": {"shape_attributes": polygon, "region_attributes": {}}},
        },
        "b2.jpg99": {
            "fileref": "",
            "size": 99,
            "filename": "b2.jpg",
            "base64_img_data": "",
            "file_attributes": {},
            "regions": {},
        },
    }
    (src / "via_region_data.json").write_text(json.dumps(data))
    return src


def test_via_without_region_attributes_needs_and_takes_class_name(tmp_path):
    src = _balloon(tmp_path / "balloon")
    with pytest.raises(
        ConvertError, match=r"region 1: no region attribute holds a class name; pass --class-name"
    ):
        convert_dataset("via", src, tmp_path / "out")
    summary = convert_dataset("via", src, tmp_path / "out", class_name="balloon")
    assert (summary["images"], summary["annotations"], summary["categories"]) == (2, 1, ["balloon"])
    assert not summary["box_only"] and summary["without_mask"] == 0
    ann = _load(summary["files"][0])["annotations"][0]
    assert ann["segmentation"] == [[10, 10, 50, 10, 30, 40]] and ann["area"] == 600
    assert not errors(check_dataset(summary["files"][0], summary["image_root"]))


def test_cli_passes_class_name_and_attribute(tmp_path, capsys):
    from scratchlab.cli import main

    src = _balloon(tmp_path / "balloon")
    assert main(["data", "convert", "--from", "via", str(src), "--out", str(tmp_path / "a")]) == 2
    assert "pass --class-name NAME" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "convert",
                "--from",
                "via",
                str(src),
                "--out",
                str(tmp_path / "a"),
                "--class-name",
                "balloon",
            ]
        )
        == 0
    )
    assert "1 category: balloon" in capsys.readouterr().out
    project = _via_project(tmp_path / "p", VIA_REGIONS[:3])
    assert (
        main(
            [
                "data",
                "convert",
                "--from",
                "via",
                str(project),
                "--out",
                str(tmp_path / "b"),
                "--attribute",
                "colour",
            ]
        )
        == 0
    )
    assert "2 categories: brown, grey" in capsys.readouterr().out


def test_via_class_name_fills_regions_with_an_empty_attribute(tmp_path):
    regions = [_region({"name": "circle", "cx": 30, "cy": 30, "r": 5}, species=""), *VIA_REGIONS[:1]]
    src = _via_project(tmp_path / "src", regions)
    with pytest.raises(
        ConvertError,
        match=r"region 1: no class: region attribute 'species' is missing or "
        r"empty; pass --attribute NAME .* or --class-name NAME",
    ):
        convert_dataset("via", src, tmp_path / "out")
    summary = convert_dataset("via", src, tmp_path / "out", class_name=" unknown ")
    assert summary["categories"] == ["cat", "unknown"]
    with pytest.raises(ConvertError, match="--class-name must not be empty"):
        convert_dataset("via", src, tmp_path / "out2", class_name=" ")


def test_flags_for_other_formats_are_refused(tmp_path):
    src = _voc(tmp_path / "src")
    for option, flag in (
        ("attribute", "--attribute"),
        ("masks_dir", "--masks-dir"),
        ("classes", "--classes"),
    ):
        with pytest.raises(ConvertError, match=f"{flag} only applies to --from"):
            convert_dataset("voc", src, tmp_path / "out", **{option: "x"})


def test_via_missing_image_and_ambiguous_json(tmp_path):
    src = _via_project(tmp_path / "src", VIA_REGIONS[:1])
    (src / "q.jpg").unlink()
    with pytest.raises(ConvertError, match=r"via\.json: image 'q\.jpg' not found"):
        convert_dataset("via", src, tmp_path / "out")
    (src / "other.json").write_text("{}")
    with pytest.raises(ConvertError, match=r"several \*\.json files"):
        convert_dataset("via", src, tmp_path / "out")


# --------------------------------------------------------------------------------------------- YOLO
def _yolo(root: Path, names_file: str = "classes.txt") -> Path:
    for name in ("a.jpg", "b.png", "c.jpg", "d.jpg"):
        _image(root / "images" / name, 40, 20)
    _image(root / "images" / "sub" / "e.jpg", 40, 20)
    (root / "labels" / "sub").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.25\n\n0 0.05 0.1 0.2 0.2\n")
    (root / "labels" / "b.txt").write_text("2 0.0 0.0 1.0 0.0 0.5 1.0\n")  # segment polygon line
    (root / "labels" / "d.txt").write_text("")  # empty: image kept, no objects; c.jpg has no label file
    (root / "labels" / "sub" / "e.txt").write_text("0 0.5 0.5 1.0 1.0")
    names = ["zebra", "ant", "cow"]
    if names_file == "data.yaml":
        (root / "data.yaml").write_text(yaml.safe_dump({"nc": 3, "names": names}))
    elif names_file == "data.yaml-dict":
        (root / "data.yaml").write_text(yaml.safe_dump({"names": dict(enumerate(names))}))
    else:
        (root / names_file).write_text("\n".join(names) + "\n\n")
    return root


@pytest.mark.parametrize("names_file", ["classes.txt", "obj.names", "data.yaml", "data.yaml-dict"])
def test_yolo_boxes_polygons_and_unlabelled_images(tmp_path, names_file):
    src = _yolo(tmp_path / "src", names_file)
    before = _snapshot(src)
    summary = convert_dataset("yolo", src, tmp_path / "out")
    assert _snapshot(src) == before
    assert summary["image_root"] == str((src / "images").resolve())
    assert (summary["images"], summary["annotations"]) == (5, 4)
    assert summary["categories"] == ["zebra", "ant", "cow"]  # the names file's order: index i -> id i + 1
    coco = _load(summary["files"][0])
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "zebra"), (2, "ant"), (3, "cow")]
    by = _anns_by_file(coco)
    assert sorted(by) == ["a.jpg", "b.png", "c.jpg", "d.jpg", "sub/e.jpg"]
    assert by["c.jpg"] == [] and by["d.jpg"] == []
    cat_of = {c["id"]: c["name"] for c in coco["categories"]}
    a = sorted(by["a.jpg"], key=lambda x: x["id"])
    assert [cat_of[x["category_id"]] for x in a] == ["ant", "zebra"]
    assert a[0]["bbox"] == [10, 7.5, 20, 5]
    assert a[1]["bbox"] == [0, 0, 6, 4]  # x from (0.05 - 0.1) * 40 clipped to 0
    tri = by["b.png"][0]
    assert cat_of[tri["category_id"]] == "cow" and tri["segmentation"] == [[0, 0, 40, 0, 20, 20]]
    assert tri["bbox"] == [0, 0, 40, 20] and tri["area"] == 400
    assert by["sub/e.jpg"][0]["bbox"] == [0, 0, 40, 20]
    assert check_dataset(summary["files"][0], summary["image_root"])[0].severity == "warning"
    assert summary["without_mask"] == 3 and not summary["box_only"]


def test_yolo_single_class_set_with_class_name(tmp_path):
    src = tmp_path / "src"
    _image(src / "images" / "a.jpg", 40, 20)
    (src / "labels").mkdir()
    (src / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    summary = convert_dataset("yolo", src, tmp_path / "out", class_name="raccoon")
    assert summary["categories"] == ["raccoon"] and summary["box_only"]
    assert "box-only" in format_summary(
        summary
    ) and "configs/mini/faster_rcnn_gn_scratch.yaml" in format_summary(summary)
    (src / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    with pytest.raises(ConvertError, match=r"a\.txt:1: class index 1 is not one of 0\.\.0"):
        convert_dataset("yolo", src, tmp_path / "out", class_name="raccoon")


@pytest.mark.parametrize(
    "line, match",
    [
        ("0 0.5 0.5 0.2", r"labels/a\.txt:2: expected 'class cx cy w h'"),
        ("7 0.5 0.5 0.2 0.2", r"labels/a\.txt:2: class index 7 is not one of 0\.\.2"),
        ("x 0.5 0.5 0.2 0.2", r"labels/a\.txt:2: class index: 'x' is not a number"),
        ("0 0.5 nan 0.2 0.2", r"labels/a\.txt:2: coordinate: 'nan' is not a finite number"),
        ("0 50 60 20 20", r"labels/a\.txt:2: coordinates must be normalised"),
        ("0 0.5 0.5 0 0.2", r"labels/a\.txt:2: box width and height must be > 0"),
    ],
)
def test_yolo_bad_line_names_file_and_line(tmp_path, line, match):
    src = _yolo(tmp_path / "src")
    (src / "labels" / "a.txt").write_text(f"1 0.5 0.5 0.5 0.25\n{line}\n")
    with pytest.raises(ConvertError, match=match):
        convert_dataset("yolo", src, tmp_path / "out")


def test_yolo_without_names_file_or_images(tmp_path):
    src = _yolo(tmp_path / "src")
    with pytest.raises(ConvertError, match=r"classes\.txt already names the classes; --class-name is for"):
        convert_dataset("yolo", src, tmp_path / "out", class_name="thing")
    (src / "classes.txt").unlink()
    with pytest.raises(ConvertError, match="no class names file .* --names FILE, or .* --class-name NAME"):
        convert_dataset("yolo", src, tmp_path / "out")
    with pytest.raises(ConvertError, match="no images/ folder"):
        convert_dataset("yolo", tmp_path / "src" / "labels", tmp_path / "out")


# -------------------------------------------------------------------------------------------- split
def test_split_is_seeded_disjoint_and_complete(tmp_path):
    src = tmp_path / "src"
    for i in range(10):
        _image(src / "images" / f"{i}.jpg", 16, 16)
    (src / "labels").mkdir()
    for i in range(10):
        (src / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.5 0.5\n" * (i % 3 + 1))
    (src / "obj.names").write_text("thing\n")
    full = _load(convert_dataset("yolo", src, tmp_path / "full")["files"][0])
    s1 = convert_dataset("yolo", src, tmp_path / "s1", split=0.3, seed=5)
    s2 = convert_dataset("yolo", src, tmp_path / "s2", split=0.3, seed=5)
    s3 = convert_dataset("yolo", src, tmp_path / "s3", split=0.3, seed=6)
    assert s1["files"] == [
        str(tmp_path / "s1" / "annotations" / f"instances_{p}.json") for p in ("train", "val")
    ]
    train, val = (_load(f) for f in s1["files"])
    assert [_load(f) for f in s2["files"]] == [train, val]  # same seed, same split
    assert [_load(f)["images"] for f in s3["files"]] != [train["images"], val["images"]]
    assert len(val["images"]) == 3 and len(train["images"]) == 7
    ids = lambda d, k: {x["id"] for x in d[k]}  # noqa: E731
    assert ids(train, "images").isdisjoint(ids(val, "images"))
    assert ids(train, "images") | ids(val, "images") == ids(full, "images")
    assert ids(train, "annotations") | ids(val, "annotations") == ids(full, "annotations")
    assert all(a["image_id"] in ids(val, "images") for a in val["annotations"])
    assert train["categories"] == val["categories"] == full["categories"]
    val_line = f"instances_val.json ({len(val['images'])} images, {len(val['annotations'])} annotations)"
    assert val_line in format_summary(s1)  # each split's size, so a tiny val set is seen at once
    with pytest.raises(ConvertError, match="strictly between 0 and 1"):
        convert_dataset("yolo", src, tmp_path / "bad", split=1.5)


def test_unknown_format_and_help_text(tmp_path):
    with pytest.raises(ConvertError, match="unknown format 'coco'"):
        convert_dataset("coco", tmp_path, tmp_path / "out")
    assert "annotations.json" in CONVERT_HELP and "instances_train.json" in CONVERT_HELP
    assert "--images" in CONVERT_HELP
    text = format_summary(
        {
            "images": 2,
            "annotations": 3,
            "categories": ["a"],
            "files": ["x.json"],
            "image_root": "/data/img",
            "warnings": ["w1"],
        }
    )
    assert "pass it as --images" in text and "/data/img" in text and "warning: w1" in text
