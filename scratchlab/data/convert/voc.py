"""PASCAL VOC XML -> records.

Layouts: ``SRC/annotations/*.xml`` + ``SRC/images/``, VOC's ``SRC/Annotations/`` + ``SRC/JPEGImages/``,
or XML files beside their images directly in SRC.

Box convention (Detectron2's VOC loader): VOC coordinates are 1-based inclusive pixel indices in
[1, W], so the box covering pixels xmin..xmax spans ``[xmin - 1, xmax]`` in continuous coordinates:
COCO ``x = xmin - 1``, ``w = xmax - xmin + 1`` (likewise y). Boxes are then clipped to the image (tools
that write 0-based coordinates give -1, clipped to 0). ``difficult`` objects are kept as ordinary
annotations (Detectron2 trains on them) and marked with an extra ``"difficult": 1`` key.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ._common import ConvertError, Record, Source, box_object, clip_xyxy, finite, list_images, read_image_info

_LAYOUTS = (("annotations", "images"), ("Annotations", "JPEGImages"))


def _layout(src: Path) -> tuple[Path, Path]:
    for ann_dir, img_dir in _LAYOUTS:
        if (src / ann_dir).is_dir() and (src / img_dir).is_dir():
            return src / ann_dir, src / img_dir
    if any(src.glob("*.xml")):
        return src, src
    raise ConvertError(
        f"{src}: no VOC layout found: expected annotations/ + images/, Annotations/ + "
        "JPEGImages/, or *.xml files beside their images"
    )


def _find_image(
    xml: Path, filename: str | None, images: dict[str, Path], by_stem: dict[str, list[Path]], img_dir: Path
) -> Path:
    """The image an XML describes: its <filename> when that file exists, else an image with the same
    stem as <filename> or as the XML file (renamed files keep stale <filename>s)."""
    name = Path(filename.strip()).name if filename and filename.strip() else ""
    if name in images:
        return images[name]
    for stem in dict.fromkeys(s for s in (Path(name).stem, xml.stem) if s):
        found = by_stem.get(stem, [])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ConvertError(f"{xml}: ambiguous image: {', '.join(p.name for p in found)} all match")
    looked = f"'{name}' or " if name else ""
    raise ConvertError(f"{xml}: no image found for it in {img_dir} (looked for {looked}{xml.stem}.*)")


def _parse(xml: Path, root: ET.Element, image: Path, class_name: str | None, warnings: list[str]) -> Record:
    info = read_image_info(image)
    w, h = info.width, info.height
    xw, xh = root.findtext("size/width"), root.findtext("size/height")
    try:
        declared = (int(float(xw)), int(float(xh))) if xw and xh else None
    except ValueError:
        declared = None
    if declared and declared != (0, 0) and declared != (w, h):
        hint = f" (EXIF orientation {info.orientation} rotates it)" if info.orientation != 1 else ""
        warnings.append(
            f"{xml}: <size> says {declared[0]}x{declared[1]}, the image is {w}x{h}{hint}; "
            "using the image's size"
        )
    rec = Record(image.name, w, h)
    for k, obj in enumerate(root.findall("object"), start=1):  # 1-based, as a person counts
        where = f"{xml}: object {k}"
        name = (obj.findtext("name") or "").strip() or class_name
        if not name:
            raise ConvertError(
                f"{where}: missing or empty <name>; pass --class-name NAME for objects without one"
            )
        where = f"{where} ({name!r})"
        bnd = obj.find("bndbox")
        if bnd is None:
            raise ConvertError(f"{where}: no <bndbox>")
        xmin, ymin, xmax, ymax = (
            finite(bnd.findtext(t), f"{where}: <{t}>") for t in ("xmin", "ymin", "xmax", "ymax")
        )
        if xmax < xmin or ymax < ymin:
            raise ConvertError(
                f"{where}: inverted box xmin={xmin:g} xmax={xmax:g} ymin={ymin:g} ymax={ymax:g}"
            )
        box = clip_xyxy(xmin - 1.0, ymin - 1.0, xmax, ymax, w, h)
        if box is None:
            warnings.append(f"{where}: box lies outside the {w}x{h} image; dropped")
            continue
        difficult = (obj.findtext("difficult") or "0").strip()
        extra = {"difficult": 1} if difficult not in ("", "0", "0.0") else None
        rec.objects.append(box_object(name, box, extra))
    return rec


def read_voc(src: Path, class_name: str | None = None) -> Source:
    """Records for every XML file of a VOC folder; sizes come from the image files. ``class_name`` is the
    class of objects whose <name> is missing or empty."""
    ann_dir, img_dir = _layout(src)
    xmls = sorted(ann_dir.glob("*.xml"))
    if not xmls:
        raise ConvertError(f"{ann_dir}: no *.xml annotation files")
    image_list = list_images(img_dir)
    images = {p.name: p for p in image_list}
    by_stem: dict[str, list[Path]] = {}
    for p in image_list:
        by_stem.setdefault(p.stem, []).append(p)
    warnings: list[str] = []
    records, used = [], {}
    for xml in xmls:
        try:
            root = ET.parse(xml).getroot()
        except (ET.ParseError, OSError) as err:
            raise ConvertError(f"{xml}: not a readable XML file: {err}") from err
        if root.tag != "annotation":
            raise ConvertError(f"{xml}: root element is <{root.tag}>, expected VOC's <annotation>")
        image = _find_image(xml, root.findtext("filename"), images, by_stem, img_dir)
        if image in used:
            raise ConvertError(f"{xml}: describes {image.name}, which {used[image].name} already describes")
        used[image] = xml
        records.append(_parse(xml, root, image, class_name, warnings))
    unused = len(image_list) - len(used)
    if unused:
        warnings.append(f"{img_dir}: {unused} image(s) have no XML file and were left out")
    return Source(img_dir, records, None, warnings)
