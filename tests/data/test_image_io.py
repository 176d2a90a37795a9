"""load_image / image_size / image_info on the awkward files real photo collections contain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.io
from PIL import Image

from scratchlab.data import image_io
from scratchlab.data.image_io import (
    ALPHA_BACKGROUND,
    ImageLoadError,
    image_info,
    image_size,
    load_image,
    load_image_tensor,
)


def _rgb(img: Image.Image, xy: tuple[int, int]) -> np.ndarray:
    return np.asarray(img, dtype=np.int32)[xy[1], xy[0]]


def test_rgb_jpeg_is_returned_unchanged_in_size(tmp_path):
    path = tmp_path / "a.jpg"
    Image.new("RGB", (33, 17), (10, 200, 30)).save(path, quality=95)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (33, 17)
    assert np.abs(_rgb(img, (5, 5)) - [10, 200, 30]).max() <= 4
    assert image_size(path) == (33, 17)


def test_greyscale_jpeg_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.new("L", (20, 10), 90).save(path)
    assert Image.open(path).mode == "L"
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (20, 10)
    px = _rgb(img, (3, 3))
    assert px[0] == px[1] == px[2] and abs(px[0] - 90) <= 2


def test_cmyk_jpeg_converts_to_rgb_colours(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    img = load_image(path)
    assert img.mode == "RGB"
    r, g, b = _rgb(img, (8, 8))
    assert r > 230 and g < 30 and b < 30


def test_png_alpha_is_composited_on_the_mean_colour(tmp_path):
    path = tmp_path / "alpha.png"
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, :4] = [255, 0, 0, 255]  # opaque red left half
    arr[:, 4:] = [0, 255, 0, 0]  # fully transparent green right half: the hidden colour must not leak
    Image.fromarray(arr, "RGBA").save(path)
    img = load_image(path)
    assert img.mode == "RGB"
    assert list(_rgb(img, (1, 1))) == [255, 0, 0]
    assert list(_rgb(img, (6, 1))) == list(ALPHA_BACKGROUND)


def test_la_png_keeps_grey_where_opaque(tmp_path):
    path = tmp_path / "la.png"
    Image.new("LA", (6, 6), (200, 255)).save(path)
    assert list(_rgb(load_image(path), (2, 2))) == [200, 200, 200]


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    img = load_image(path)
    assert img.mode == "RGB"
    assert np.asarray(img)[0, :, 0].tolist() == [0, 3, 128, 255]  # Pillow's convert() would give 255 for 1000


def test_palette_png_with_and_without_transparency(tmp_path):
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 20, 250] + [0] * (254 * 3))
    pal.save(tmp_path / "p.png")
    assert list(_rgb(load_image(tmp_path / "p.png"), (0, 0))) == [10, 20, 250]
    pal.save(tmp_path / "pt.png", transparency=1)
    assert list(_rgb(load_image(tmp_path / "pt.png"), (0, 0))) == list(ALPHA_BACKGROUND)


def test_bilevel_png(tmp_path):
    path = tmp_path / "bw.png"
    Image.new("1", (5, 5), 1).save(path)
    assert list(_rgb(load_image(path), (1, 1))) == [255, 255, 255]


def _exif_rotated_jpeg(path, orientation: int) -> None:
    """A 40x20 stored picture: left half red, right half blue, tagged with an EXIF orientation."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = [255, 0, 0]
    arr[:, 20:] = [0, 0, 255]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_6_swaps_size_and_rotates_pixels(tmp_path):
    path = tmp_path / "phone.jpg"
    _exif_rotated_jpeg(path, 6)  # 6 = display rotated 90 degrees clockwise
    assert Image.open(path).size == (40, 20)
    assert image_size(path) == (20, 40)
    info = image_info(path)
    assert (info.stored_width, info.stored_height, info.orientation) == (40, 20, 6)
    img = load_image(path)
    assert img.size == (20, 40)
    # Clockwise: the stored left (red) half ends up on top, the right (blue) half at the bottom.
    top, bottom = _rgb(img, (10, 5)), _rgb(img, (10, 35))
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


def test_exif_orientation_3_keeps_size_but_turns_upside_down(tmp_path):
    path = tmp_path / "flip.jpg"
    _exif_rotated_jpeg(path, 3)  # 180 degrees: red moves to the right
    img = load_image(path)
    assert img.size == (40, 20) == image_size(path)
    assert _rgb(img, (35, 10))[0] > 200 and _rgb(img, (5, 10))[2] > 200


def test_truncated_jpeg_raises_a_clear_error(tmp_path):
    good = tmp_path / "good.jpg"
    arr = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(arr).save(good)
    data = good.read_bytes()
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg.*truncated"):
        load_image(bad)
    with pytest.raises(ImageLoadError, match=r"cut\.jpg"):
        image_info(bad, verify=True)
    assert image_size(bad) == (64, 64)  # the header alone is intact: no decode without verify
    assert issubclass(ImageLoadError, ValueError)


@pytest.mark.parametrize("content", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n garbage"])
def test_non_image_raises_image_load_error(tmp_path, content):
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=r"fake\.jpg: cannot read image"):
        load_image(path)
    with pytest.raises(ImageLoadError, match=r"fake\.jpg"):
        image_size(path)


def test_missing_file_raises_image_load_error(tmp_path):
    with pytest.raises(ImageLoadError, match=r"nope\.png: cannot read image: no such file"):
        load_image(tmp_path / "nope.png")


def _noise_jpeg(path, mode: str, orientation: int = 1) -> None:
    arr = np.random.default_rng(1).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).convert(mode).save(path, "JPEG", quality=90, exif=exif.tobytes())


@pytest.mark.parametrize("mode, orientation", [("RGB", 1), ("L", 1), ("CMYK", 1), ("RGB", 6), ("RGB", 3)])
def test_tensor_loader_decodes_jpegs_to_the_same_pixels_as_load_image(tmp_path, mode, orientation):
    path = tmp_path / "x.jpg"
    _noise_jpeg(path, mode, orientation)
    tensor = load_image_tensor(path)
    assert tensor.dtype == torch.uint8 and tensor.shape[0] == 3
    assert np.array_equal(tensor.permute(1, 2, 0).numpy(), np.asarray(load_image(path)))


def test_tensor_loader_takes_other_formats_through_load_image(tmp_path):
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (6, 4), (255, 0, 0, 0)).save(path)
    assert load_image_tensor(path)[:, 0, 0].tolist() == list(ALPHA_BACKGROUND)


@pytest.mark.parametrize("name, cut", [("cut.jpg", True), ("nope.jpg", False)])
def test_tensor_loader_names_the_file_it_cannot_read(tmp_path, name, cut):
    path = tmp_path / name
    if cut:
        _noise_jpeg(tmp_path / "good.jpg", "RGB")
        data = (tmp_path / "good.jpg").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=name.replace(".", r"\.")):
        load_image_tensor(path)


# --- the Pillow fallback for a torchvision.io without image decoders (deprecated since torchvision 0.29) --

RACCOON_IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "raccoon" / "images"
needs_torchvision_jpeg = pytest.mark.skipif(
    image_io._read_jpeg is None, reason="this torchvision.io has no JPEG decoder: nothing to compare against"
)


def _pillow_only(monkeypatch) -> None:
    monkeypatch.setattr(image_io, "_read_jpeg", None)


def _write_png(path, kind: str) -> None:
    rng = np.random.default_rng(2)
    if kind == "grey":
        Image.fromarray(rng.integers(0, 255, (12, 20), dtype=np.uint8), "L").save(path)
    elif kind == "rgba":
        Image.fromarray(rng.integers(0, 255, (12, 20, 4), dtype=np.uint8), "RGBA").save(path)
    elif kind == "16bit":
        Image.fromarray(rng.integers(0, 65535, (12, 20), dtype=np.uint16)).save(path)
    else:  # palette, colour 3 transparent
        pal = Image.fromarray(rng.integers(0, 8, (12, 20), dtype=np.uint8), "P")
        pal.putpalette(rng.integers(0, 255, 8 * 3, dtype=np.uint8).tolist())
        pal.save(path, transparency=3)


_FILES = [("jpg", m, o) for m, o in [("RGB", 1), ("RGB", 6), ("RGB", 3), ("RGB", 8), ("L", 1), ("CMYK", 1)]]
_FILES += [("png", kind, None) for kind in ("grey", "rgba", "16bit", "palette")]


@needs_torchvision_jpeg
@pytest.mark.parametrize("ext, kind, orientation", _FILES)
def test_pillow_fallback_gives_the_torchvision_paths_tensors(tmp_path, monkeypatch, ext, kind, orientation):
    path = tmp_path / f"x.{ext}"
    if ext == "jpg":
        _noise_jpeg(path, kind, orientation)
        with Image.open(path) as im:
            assert im.mode == kind
    else:
        _write_png(path, kind)
    fast = load_image_tensor(path)
    _pillow_only(monkeypatch)
    slow = load_image_tensor(path)
    assert slow.dtype == torch.uint8 and slow.shape[0] == 3
    assert torch.equal(fast, slow)


@needs_torchvision_jpeg
def test_pillow_fallback_matches_torchvision_on_raccoon_photos(monkeypatch):
    if not RACCOON_IMAGES.is_dir():
        pytest.skip(f"raccoon photos not found at {RACCOON_IMAGES}")
    # Colour photos of several sizes plus a grey-scale JPEG (raccoon-150).
    names = ["raccoon-1.jpg", "raccoon-57.jpg", "raccoon-113.jpg", "raccoon-150.jpg", "raccoon-199.jpg"]
    fast = [load_image_tensor(RACCOON_IMAGES / n) for n in names]
    _pillow_only(monkeypatch)
    for name, tensor in zip(names, fast, strict=True):
        assert torch.equal(load_image_tensor(RACCOON_IMAGES / name), tensor), name


@pytest.mark.parametrize("name, cut", [("cut.jpg", True), ("nope.jpg", False)])
def test_pillow_fallback_names_the_file_it_cannot_read(tmp_path, monkeypatch, name, cut):
    _pillow_only(monkeypatch)
    test_tensor_loader_names_the_file_it_cannot_read(tmp_path, name, cut)


def test_a_torchvision_io_without_decode_jpeg_selects_pillow(monkeypatch):
    monkeypatch.delattr(torchvision.io, "decode_jpeg")
    assert image_io._torchvision_jpeg_reader() is None


def test_a_torchvision_io_whose_decoder_fails_selects_pillow(monkeypatch):
    def no_extension(*args, **kwargs):
        raise RuntimeError("Couldn't load the image extension.")

    monkeypatch.setattr(torchvision.io, "decode_jpeg", no_extension)
    assert image_io._torchvision_jpeg_reader() is None


class _Broken(torch.utils.data.Dataset):
    def __init__(self, path):
        self.path = path

    def __len__(self):
        return 1

    def __getitem__(self, index):
        from scratchlab.data.image_io import load_image_tensor

        return load_image_tensor(self.path)


def test_a_workers_image_error_is_one_line_naming_the_file(tmp_path):
    from scratchlab.data.image_io import ImageLoadError

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    loader = torch.utils.data.DataLoader(_Broken(broken), num_workers=1, batch_size=None)
    with pytest.raises(ImageLoadError) as caught:
        next(iter(loader))
    assert str(broken) in str(caught.value)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
