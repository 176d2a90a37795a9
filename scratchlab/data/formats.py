"""The annotation formats `scratchlab data convert` reads and its help text, importable without torch
(the command line builds its help from them on every call)."""

FORMATS = ("voc", "via", "yolo", "labelme", "masks")

# User-facing text for `scratchlab data convert --help`.
CONVERT_HELP = """\
Convert annotations to COCO JSON. Formats:
  voc      SRC/annotations/*.xml + SRC/images/ (or VOC's Annotations/ + JPEGImages/); boxes as
           Detectron2 reads VOC (x = xmin - 1, w = xmax - xmin + 1), clipped to the image;
           'difficult' objects are kept (marked "difficult": 1). Box-only.
  via      a VGG Image Annotator 1.x/2.x JSON (SRC is the file or its folder) beside its images;
           polygon/polyline/circle/ellipse regions -> polygons, rect regions -> boxes (box-only);
           the class is the region attribute given by --attribute, else the project's first
           region attribute; --class-name NAME gives regions without one a class (a file with
           "region_attributes": {}, like the balloon example, needs it).
  yolo     an Ultralytics dataset YAML (any name: path, train, val, names; kpt_shape and
           flip_idx for keypoints) whose train/val split the output follows, class index i ->
           category id i + 1; or a folder SRC/images/ + SRC/labels/*.txt ('cls cx cy w h'
           normalised, segment polygons, pose points) named by --names FILE, data.yaml,
           classes.txt or obj.names (or --class-name for one class); images without labels are
           kept empty.
  labelme  a folder of LabelMe *.json files (one per image; imagePath relative to the JSON);
           polygons and circles -> polygons, rectangles -> boxes; shapes sharing a group_id are one
           instance; the image file must exist (embedded imageData is not extracted).
  masks    SRC/images/ + SRC/masks/ (or --images-dir / --masks-dir); each image's mask has its
           stem (plus a suffix such as _mask, found automatically): a PNG of instance ids
           (0 = background) or a folder with one binary PNG per instance. Classes: --class-name
           NAME (one class) and/or --classes FILE (YAML/JSON: {id: name} or {image: {id: name}}).
           Masks become RLE with exact pixel areas. PNG, TIFF or BMP: a JPEG mask is refused (lossy).
Output: DIR/annotations.json, or with --split F a seeded split by image into
DIR/annotations/instances_train.json and DIR/annotations/instances_val.json (F = val fraction);
a YOLO YAML's own train/val split writes those two files (no --split).
Images are not copied: file_name is relative to the source image folder, printed at the end;
pass that folder as --images. Image sizes are read from the image files (after EXIF rotation).
Box-only output (no masks) trains with a faster_rcnn config. Nothing is written into SRC."""
