"""Safe decoding and the shared preprocessing."""

import io

import numpy as np
import pytest
from PIL import Image

from ocr.data.images import ImageError, Preprocess, decode, preprocess_bytes, validate


def _png(w, h, mode="L", **kw) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), 200).save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
@pytest.mark.parametrize("interlace", [False, True])
def test_png_check_accepts_and_catches_truncation(mode, interlace):
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (23, 41, 3), dtype=np.uint8)).convert(
        "I" if mode == "I;16" else mode)
    if mode == "I;16":
        img = img.convert("I;16")
    buf = io.BytesIO()
    img.save(buf, "PNG", interlace=interlace)
    data = buf.getvalue()
    assert validate(data) == (41, 23)
    for cut in (len(data) - 4, len(data) // 2, 30):
        with pytest.raises(ImageError) as e:
            validate(data[:cut])
        assert e.value.reason == "corrupt_image"


def test_jpeg_truncation_is_caught():
    rng = np.random.default_rng(2)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (200, 300), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    assert validate(data) == (300, 200)
    with pytest.raises(ImageError, match="truncated"):
        validate(data[: len(data) // 2])


@pytest.mark.parametrize("data,reason", [
    (b"", "zero_byte"), (b"GIF89a-nope", "corrupt_image"), (b"%PDF-1.4", "not_an_image"),
])
def test_bad_bytes(data, reason):
    with pytest.raises(ImageError) as e:
        decode(data)
    assert e.value.reason == reason


def test_pixel_cap_before_decode():
    data = _png(400, 300)
    with pytest.raises(ImageError) as e:
        validate(data, max_pixels=1000)
    assert e.value.reason == "too_many_pixels" and "400x300" in str(e.value)
    buf = io.BytesIO()
    Image.new("L", (400, 300)).save(buf, "BMP")
    with pytest.raises(ImageError, match="over the cap"):
        decode(buf.getvalue(), max_pixels=1000)


def test_preprocess_keep_ratio_and_pad():
    spec = Preprocess(height=32, width=100, channels=1)
    img = Image.new("L", (50, 64), 255)  # resized to 25x32, padded to 100
    x = spec([img])
    assert x.shape == (1, 1, 32, 100) and x.dtype == np.float32
    assert np.allclose(x, 1.0)  # white, replicated into the padding, normalised to +1
    assert spec.resized_width(1000, 32) == 100
    stretched = Preprocess(height=32, width=100, keep_ratio=False)
    assert stretched([img]).shape == (1, 1, 32, 100)


def test_preprocess_bucket_and_rgb():
    spec = Preprocess(height=32, width=256, channels=3)
    blobs = [_png(40, 32, "RGB"), _png(90, 32, "RGB")]
    x = preprocess_bytes(blobs, spec, bucket=True)
    assert x.shape == (2, 3, 32, 96)
    assert Preprocess.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="channels"):
        Preprocess(channels=2)


def _line(pad: tuple[int, int, int, int] = (0, 0, 0, 0), ink: int = 30, paper: int = 225) -> Image.Image:
    """A 20 x 56 px pattern of bars (strokes of 'ink' on 'paper') with (top, left, bottom, right) padding."""
    core = np.full((20, 60), paper, np.uint8)
    core[:, ::6] = ink
    core[:, 1::6] = ink
    top, left, bottom, right = pad
    return Image.fromarray(np.pad(core, ((top, bottom), (left, right)), constant_values=paper))


def test_trim_cuts_loose_margins_to_the_ink():
    """A line cut loosely (padding of 1-2x its height, the way hand-cut crops and detector boxes
    come) reaches the model as the tight line it was trained on."""
    from ocr.data.images import ink_mask, trim_to_ink

    tight = trim_to_ink(_line(), 0.1)
    assert tight.size == (56 + 4, 20 + 4)         # ink 56 x 20 touching the edges: 2 px (10%) of paper added
    for pad in ((20, 30, 40, 10), (3, 0, 1, 50)):
        loose = trim_to_ink(_line(pad), 0.1)
        np.testing.assert_array_equal(np.asarray(loose), np.asarray(tight))   # loose or tight: one input
        assert trim_to_ink(loose, 0.1) is loose                              # idempotent
    inverted = Image.eval(_line((10, 10, 10, 10)), lambda v: 255 - v)   # light text on a dark screen
    assert trim_to_ink(inverted, 0.1).size == (60, 24)
    blank = Image.new("L", (80, 40), 200)
    assert trim_to_ink(blank, 0.1) is blank and ink_mask(np.asarray(blank)) is None
    faint = _line((10, 10, 10, 10), ink=210, paper=225)          # 15 grey levels: not ink
    assert trim_to_ink(faint, 0.1).size == faint.size
    spec, off = Preprocess(height=32, width=200, trim=0.1), Preprocess(height=32, width=200)
    np.testing.assert_array_equal(spec([_line((40, 40, 40, 40))]), spec([_line()]))
    assert off.resize(_line((40, 40, 40, 40))).shape[1] < spec.resize(_line((40, 40, 40, 40))).shape[1]
    rgb = Preprocess(height=32, width=200, channels=3, trim=0.1)
    assert rgb.prepare(_line((9, 9, 9, 9)).convert("RGB")).size == (60, 24)


def test_trim_is_off_for_checkpoints_from_before_it_and_checked():
    old = {"height": 32, "width": 100, "keep_ratio": True, "pad": "replicate", "channels": 1,
           "mean": 0.5, "std": 0.5}
    assert Preprocess.from_json(old).trim == 0.0
    assert Preprocess.from_json({**old, "trim": 0.1}).to_json()["trim"] == 0.1
    with pytest.raises(ValueError, match="trim must be in"):
        Preprocess(trim=2.0)


@pytest.mark.parametrize("orientation,size", [(1, (40, 10)), (3, (40, 10)), (6, (10, 40)), (8, (10, 40))])
def test_uploads_are_turned_as_their_exif_orientation_shows_them(orientation, size):
    """A phone photo taken sideways is stored sideways with EXIF orientation 6 or 8: the service
    reads it the way a viewer shows it."""
    from ocr.serve.uploads import UploadLimits, decode_upload

    pixels = np.zeros((10, 40, 3), np.uint8)
    pixels[:, :20] = 255   # white left half: where it ends up says which way it turned
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    shown = np.asarray(decode_upload(buf.getvalue(), UploadLimits()).convert("L"))
    assert shown.shape[::-1] == size
    white = {1: shown[:, :20], 3: shown[:, 20:], 6: shown[:20], 8: shown[20:]}[orientation]
    assert white.mean() > 200
