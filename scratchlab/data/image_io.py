"""Robust image reading: every image the toolkit touches goes through :func:`load_image`.

Real photo collections mix grey-scale and CMYK JPEGs, palette PNGs, 16-bit PNGs, images with an alpha
channel and phone pictures whose pixels are stored sideways with an EXIF ``Orientation`` tag. The
functions here return what a person sees in an image viewer:

* the EXIF orientation is applied (:func:`PIL.ImageOps.exif_transpose`), so width/height and pixels are
  those of the displayed picture; annotations are assumed to be drawn on that displayed picture;
* the result is always 8-bit ``RGB``. Grey-scale is replicated to three channels, 16-bit grey is scaled
  (``>> 8``) rather than clipped, CMYK uses Pillow's conversion (no ICC colour management);
* transparency (``RGBA``, ``LA``, palette with a transparent colour) is composited onto a flat
  background of the ImageNet mean colour :data:`ALPHA_BACKGROUND`, which normalises to ~0: transparent
  areas then carry no signal instead of the arbitrary colour hidden under alpha = 0.

A file that cannot be opened or decoded (missing, not an image, truncated) raises :class:`ImageLoadError`,
a ``ValueError`` whose message names the file. Note: if some code sets
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True``, Pillow pads truncated files silently and this check is lost.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps

__all__ = [
    "ALPHA_BACKGROUND",
    "ImageLoadError",
    "ImageInfo",
    "load_image",
    "load_image_tensor",
    "image_size",
    "image_info",
]

# ImageNet mean (0.485, 0.456, 0.406) * 255: after the usual normalisation a composited transparent
# area becomes ~0, the least informative value for a network.
ALPHA_BACKGROUND: tuple[int, int, int] = (124, 116, 104)

_ORIENTATION_TAG = 0x0112
# Orientations 5..8 rotate by 90 degrees, so the displayed width is the stored height.
_SWAPS_AXES = {5, 6, 7, 8}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageLoadError(ValueError):
    """An image file is missing, not an image, truncated or otherwise undecodable.

    A DataLoader worker's error is re-raised in the main process as ``ImageLoadError(text)``, the text
    being the worker's whole traceback; the message keeps only its last line, the one naming the file."""

    def __init__(self, message: str = "") -> None:
        if message.startswith("Caught ImageLoadError") and "ImageLoadError: " in message:
            message = message.rstrip().rsplit("ImageLoadError: ", 1)[1]
        super().__init__(message)


class ImageInfo(NamedTuple):
    """Header facts about an image file."""

    width: int  # after EXIF orientation
    height: int  # after EXIF orientation
    stored_width: int  # as stored in the file, before orientation
    stored_height: int
    orientation: int  # EXIF orientation 1..8 (1 when absent or invalid)
    format: str | None
    mode: str


def _fail(path: str | os.PathLike[str], err: BaseException) -> ImageLoadError:
    if isinstance(err, FileNotFoundError):
        return ImageLoadError(f"{os.fspath(path)}: cannot read image: no such file")
    what = "file is truncated: " if "truncated" in str(err).lower() else ""
    return ImageLoadError(f"{os.fspath(path)}: cannot read image: {what}{type(err).__name__}: {err}")


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not make an otherwise fine picture unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit RGB by scaling, since Pillow's convert() clips at 255."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        arr8 = (arr.astype(np.uint16) >> 8).astype(np.uint8)
    elif im.mode == "I":
        # 16-bit PNGs may open as "I"; values above 255 mean the 16-bit range was used.
        arr = np.clip(arr, 0, 65535)
        arr8 = (arr >> 8 if arr.max(initial=0) > 255 else arr).astype(np.uint8)
    else:  # "F": floats in [0, 1] are scaled, anything else is taken as 0..255
        arr = np.nan_to_num(arr.astype(np.float32))
        if arr.max(initial=0.0) <= 1.0:
            arr = arr * 255.0
        arr8 = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(arr8[:, :, None], 3, axis=2), "RGB")


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(im)
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, RGBX, ...


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open ``path`` and return its displayed picture as an 8-bit RGB image.

    EXIF orientation is applied, any mode is converted to RGB and alpha is composited onto
    :data:`ALPHA_BACKGROUND` (see the module docstring). Raises :class:`ImageLoadError` naming the file
    when it is missing, not an image, or truncated/corrupt.
    """
    try:
        with Image.open(path) as im:
            im.load()  # decode now, inside the error handler, so truncation surfaces here
            # in_place avoids the full copy exif_transpose makes when there is nothing to rotate.
            ImageOps.exif_transpose(im, in_place=True)
            # After load() the pixels live in memory, so `im` stays valid once the file is closed.
            rgb = _to_rgb(im)
    # Pillow's format plugins raise a zoo of exception types (OSError, SyntaxError, struct.error,
    # ValueError, DecompressionBombError, ...) for bad files; all of them mean "unreadable image".
    except Exception as err:
        raise _fail(path, err) from err
    return rgb


def _torchvision_jpeg_reader() -> Callable[[str], torch.Tensor | None] | None:
    """torchvision.io's libjpeg-turbo JPEG reader, or None where this torchvision cannot decode JPEGs.

    torchvision 0.29 deprecated its image decoders (superseded by TorchCodec) and says they will be
    removed; a build may also lack its image extension. Decided once, at import: the names must import and
    decode a tiny JPEG with the arguments used below, else every image goes through Pillow, which gives
    the same tensors (tests/data/test_image_io.py). The reader returns None for a file that is not a JPEG.
    """
    try:
        from torchvision.io import ImageReadMode, decode_jpeg, read_file

        def decode(data: torch.Tensor) -> torch.Tensor:
            return decode_jpeg(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)

        probe = io.BytesIO()
        Image.new("RGB", (2, 2)).save(probe, "JPEG")
        if decode(torch.frombuffer(bytearray(probe.getvalue()), dtype=torch.uint8)).shape != (3, 2, 2):
            return None
    except Exception:  # ImportError, RuntimeError (no image extension), TypeError (changed signature), ...
        return None

    def read_jpeg(path: str) -> torch.Tensor | None:
        data = read_file(path)
        if data.numel() > 2 and data[0] == 0xFF and data[1] == 0xD8:  # the JPEG start-of-image marker
            return decode(data)
        return None

    return read_jpeg


# torchvision's JPEG reader, the fast path for photographs; None means Pillow decodes everything.
_read_jpeg = _torchvision_jpeg_reader()


def load_image_tensor(path: str | os.PathLike[str]) -> torch.Tensor:
    """:func:`load_image` as a uint8 ``[3, H, W]`` tensor, what the training transforms take.

    JPEGs (most photographs) are decoded by ``torchvision.io.decode_jpeg`` where this torchvision has it
    (libjpeg-turbo, EXIF orientation applied, grey and CMYK converted to RGB): the same pixels as Pillow's
    decode, faster on large photos (1280x1024: 4.9 against 7.6 ms, docs/notes/). Anything else, a JPEG
    it refuses (truncated, corrupt), or every file where torchvision.io has no decoder, goes through
    :func:`load_image`, which handles every mode and names the file in its error. Either way the tensor
    is a CHW view of HWC memory: no transposing copy, and the resize that follows takes uint8
    channels-last input on its fast path.
    """
    if _read_jpeg is not None:
        try:
            tensor = _read_jpeg(os.fspath(path))
            if tensor is not None:
                return tensor
        except RuntimeError:
            pass  # missing, unreadable or a JPEG libjpeg refuses: load_image decodes it or names the problem
    return torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1)


def image_info(path: str | os.PathLike[str], verify: bool = False) -> ImageInfo:
    """Read an image's size and EXIF orientation from its header, without decoding the pixels.

    With ``verify=True`` the pixel data is decoded as well, so a truncated or corrupt file raises
    :class:`ImageLoadError`; JPEGs are decoded at 1/8 scale (libjpeg's DCT scaling), which still reads
    every byte of the compressed stream but costs a fraction of a full decode.
    """
    try:
        with Image.open(path) as im:
            sw, sh = im.size
            fmt, mode = im.format, im.mode
            orientation = _orientation(im)
            if verify:
                if fmt == "JPEG":
                    im.draft(None, (1, 1))
                im.load()
    except Exception as err:  # see load_image: any plugin error means "unreadable"
        raise _fail(path, err) from err
    w, h = (sh, sw) if orientation in _SWAPS_AXES else (sw, sh)
    return ImageInfo(w, h, sw, sh, orientation, fmt, mode)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` of the displayed picture (after EXIF orientation), read from the header only."""
    info = image_info(path)
    return info.width, info.height
