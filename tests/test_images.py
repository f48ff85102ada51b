import numpy as np
import pytest
import torch
from PIL import Image

from nst.images import load_image, save_png
from tests.conftest import CONTENT


def rgb_of(path) -> np.ndarray:
    return (load_image(path)[0].permute(1, 2, 0).numpy() * 255).round()


@pytest.mark.parametrize("mode, value, expected", [
    ("L", 128, (128, 128, 128)),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ("RGBA", (255, 0, 0, 0), (255, 255, 255)),  # fully transparent -> white
    ("RGBA", (0, 0, 255, 255), (0, 0, 255)),
])
def test_modes_become_rgb(tmp_path, mode, value, expected):
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    Image.new(mode, (5, 4), value).save(path)
    assert tuple(rgb_of(path)[0, 0]) == expected


def test_sixteen_bit_and_palette(tmp_path):
    a = np.full((4, 6), 65535 // 2, dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    assert abs(rgb_of(tmp_path / "g16.png")[0, 0, 0] - 128) <= 1
    Image.new("RGB", (4, 4), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert tuple(rgb_of(tmp_path / "p.png")[0, 0]) == (10, 200, 30)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (8, 4), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown
    img.save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").shape == (1, 3, 8, 4)


def test_resize_long_side_and_range():
    x = load_image(CONTENT, 100)
    assert max(x.shape[-2:]) == 100 and x.min() >= 0 and x.max() <= 1
    assert load_image(CONTENT, (30, 20)).shape == (1, 3, 20, 30)


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(ValueError, match="junk.png.*not readable"):
        load_image(tmp_path / "junk.png")


def test_png_written_atomically_and_round_trips(tmp_path):
    x = torch.rand(1, 3, 6, 7)
    path = save_png(x, tmp_path / "a" / "r.png")
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.png"]  # no temporary file left behind
    assert (load_image(path) - x).abs().max() <= 0.5 / 255 + 1e-6


def test_written_files_get_the_mode_a_plain_open_would(tmp_path):
    import os

    from nst.files import write_text

    old = os.umask(0o027)
    try:
        import importlib

        import nst.files

        importlib.reload(nst.files)
        nst.files.write_text(tmp_path / "a.csv", "x\n")
    finally:
        os.umask(old)
        importlib.reload(nst.files)
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o640  # mkstemp alone gave 0600: unreadable to a group
    write_text(tmp_path / "b.csv", "x\n")
    assert (tmp_path / "b.csv").stat().st_mode & 0o777 == 0o666 & ~old
