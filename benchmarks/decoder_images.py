"""The offline images the shipped decoders were trained on, as two folders: `python benchmarks/decoder_images.py
OUT` writes OUT/train and OUT/held_out (copies), then train with
`python -m experiments.train_decoder level=L images=OUT/train held_out=OUT/held_out`.

Training: scikit-image's colour sample photos, matplotlib's Grace Hopper, our embedded Kandinsky-like painting
and, where present, the paper's images in ../shared/images (training only: no run needs them). Held out, never
trained on: scikit-learn's china.jpg and flower.jpg and scikit-image's coffee.png.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

SKIMAGE = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coins.png", "color.png", "grass.png",
           "gravel.png", "ihc.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg", "retina.jpg",
           "hubble_deep_field.jpg")
HELD_OUT = ("sklearn:china.jpg", "sklearn:flower.jpg", "skimage:coffee.png")


def sources() -> dict[str, Path]:
    import matplotlib
    import skimage
    import sklearn

    return {"skimage": Path(skimage.data.__file__).parent, "sklearn": Path(sklearn.__file__).parent / "datasets" / "images",
            "matplotlib": Path(matplotlib.get_data_path()) / "sample_data", "nst": Path(__file__).parents[1] / "nst" / "assets"}


def main(out: Path) -> None:
    src = sources()
    train = [src["skimage"] / f for f in SKIMAGE] + [src["matplotlib"] / "grace_hopper.jpg", src["nst"] / "kandinsky.png"]
    train += sorted((Path.cwd().parent / "shared" / "images").rglob("*.jpg"))
    held = [src[s.split(":")[0]] / s.split(":")[1] for s in HELD_OUT]
    for name, files in (("train", train), ("held_out", held)):
        (out / name).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(f, out / name / f.name)
        print(f"{out / name}: {len(files)} images")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/decoder_images"))
