"""Derive the normalised VGG19 of Gatys et al. 2016 (Sec. 2) offline: `python -m nst.assets.vgg19_normalization`.

Definition. Every conv filter k of layer l gets a scale s_l[k] = μ_l[k], its mean rectified activation (relu
output) over the calibration images and positions, and the weights become W_l[k, c] · s_{l−1}[c] / s_l[k],
b_l[k] / s_l[k] (s_0 = 1; nst/vgg.py `normalize`). Then every relu_l[k] is the original one divided by s_l[k]
(ReLU and both poolings commute with positive per-channel scales), so the network computes the same function up
to per-channel scales and, on the calibration set, every filter's mean activation is exactly 1. Because layer l's
pre-activation is unchanged by the rescaling of layers < l, measuring μ_l on the "already normalised" network
equals measuring it on the original one: one forward pass of the original network per image gives all 16 layers.
`main` checks the result by re-measuring on the normalised network (max |mean − 1| is printed).

Calibration set: colour photographs only. Grey photos repeated over RGB never drive colour-opponent filters, so
averaged in they shrink those filters' μ and blow up their scale. Measured: calibrated on the six grey photos of
the previous set alone, four filters of conv4_x and 17 of conv5_4 come out dead and the E_l below spread 6.5e10x;
averaged with the six colour photos they lowered conv1_1's filter 12 (green against red and blue) to 1.5% of its
layer's median (2.0% colour-only, 2.8% shipped) and left conv2_1's filter 123 (a saturated-blue detector, silent on
all twelve photos) at the dead threshold. Measured effect on the paper's style loss (white-noise start vs kandinsky,
128 px, avg pooling, paper convention with per-position Gram, relu1_1..relu5_1; spreads are max/min over the
layers):
  calibration                           conv1_1 #12 μ / median   E_l spread   style-gradient-norm spread
  original weights (no normalisation)            -                   1.6e5          3.1e5
  12 photos, 6 of them grey (previous)         0.015                 1.2e3          3.4e4
  6 grey photos only                           0.012                 6.5e10         1.9e11
  6 colour photos                              0.020                 7.1e2          3.6e4
  4 colour photos (shipped set)                0.025                 4.0e2          5.1e3
  4 colour photos x 10 views (shipped)         0.028                 2.1e2          2.9e3
hubble_deep_field.jpg (black sky with specks) and retina.jpg (a red fundus disc on black) are left out as not
natural photographs. What remains is the content of the four photos, not their colour: they hold no foliage and no
bright blue sky, which filters 12 and 123 respond to. On the held-out photo tubingen.jpg filter 12's mean is 0.66
of its layer's median and filter 123's 0.26 (its blue sky; 0.13 on starry_night and shipwreck), against 0.028 and
8e-6 here. So these two stay the loud filters at the white-noise start: 96% of E(relu1_1) and 91% of E(relu2_1).
As a diagnostic only (not natural images, not used), the four photos in all six RGB channel orders put filter
12 at 2.7x its layer's median and the E_l within 10x: the coverage of hues, not the definition, sets these scales.

Views. Each photo enters as 10 deterministic views, all resized to long side SIZE: the whole image, centre crops of
80% and 60% of each side, top-left and bottom-right crops of 60%, and the mirror image of each (`views`). The
crops are zoomed-in scales; every photo has the same number of views, so each photo counts equally:
μ_l = mean over views of the per-view spatial mean.

Dead filters keep their scale (s = 1) under the literal rule (MU_FLOOR = 0; under any floor > 0 they are
floored like any other filter instead). A filter counts as dead when μ_l[k] ≤ DEAD_RATIO · median_k μ_l. Only
conv2_1's filter 123 is (μ 7.6e-6 of its layer's median; the next smallest filter anywhere is 2.6e-3 of its
median). It is not dead on natural images (see above: blue sky), so zeroing it would change the function on real
inputs; dividing by its μ would make its mean about 3e4 times its layer's median on tubingen's sky. Kept at s = 1
its mean is 14 on kandinsky and 0.17 on white noise, and it holds 91% of E(relu2_1) at the noise start
(E(relu2_1) = 36; with s = its layer's median μ instead it would be 2.3).

Floor (MU_FLOOR, measured and not applied). MU_FLOOR = f raises every μ_l[k] < f · median_k μ_l to f · median (the
dead filter included), a departure from the per-filter rule for filters that 4 photos cannot estimate. f = 0.2 floors
141 of 5504 filters (conv1_1 2, conv2_1 5, conv2_2 1, conv3_1 7, conv3_2 5, conv3_3 2, conv3_4 1, conv4_1 15,
conv4_2 21, conv4_3 5, conv4_4 10, conv5_1 7, conv5_2 15, conv5_3 9, conv5_4 36) and fixes the balance of the style
layers at the white-noise start (tubingen's shape, seed 0, std 0.1; avg pooling; E_l of relu1_1..relu5_1; gradient
norm of each E_l w.r.t. the RGB image; spreads are max/min over the five layers):
  vs composition_vii                        128 px: E spread, grad spread     256 px: E spread, grad spread
  literal (f = 0, shipped)                       6.6          69                  52           535 (relu1_1 92%)
  f = 0.2                                        4.8          4.8                 5.7          8.1 (relu1_1 35%)
  (vs kandinsky: 107 / 1.8e3 and 806 / 1.9e3 literal, 5.1 / 8.4 and 6.3 / 9.7 with f = 0.2; this set-up differs
  from the table above's, whence its other literal numbers.)
It also cuts the content loss at the noise start (relu4_2, 128 px) from 8.4e5 to 3.0e5: with f = 0 the 21 conv4_2
filters it would floor hold 74% of it. But it does not give the look of the paper's Fig. 3: the reduced Fig. 3 on
the CPU (128 px, 150 steps, rows relu1_1 and relu1_1..relu5_1, α/β 1e-5..1e-2) shows the photo and coloured dots
in every cell with either file, and with f = 0.2 the photo is if anything clearer (content PSNR 13.2-16.1 dB
against 11.8-14.1 dB with f = 0, higher in all 8 cells). So the shipped scales stay the literal ones.

Licences (photos bundled inside the scikit-image wheel, skimage/data, nothing fetched by pooch; as stated in
skimage/data/_fetchers.py):
  astronaut.png          Eileen Collins, NASA Great Images (flic.kr/p/r9qvLn); public domain.
  chelsea.png            Chelsea the cat, Stefan van der Walt; CC0.
  coffee.png             coffee cup, Rachel Michetti / Pikolo Espresso Bar; CC0.
  rocket.jpg             DSCOVR launch on Falcon 9, SpaceX photos; released into the public domain.
Left out: the grey photos (camera, brick, grass, gravel, clock_motion, coins; see above), hubble_deep_field.jpg and
retina.jpg (not natural photographs), moon.png (no licence given), motorcycle_*.png (Middlebury, no licence given),
microscopy and synthetic images; no licence-clean painting ships offline. Held out (never calibrated on):
matplotlib's grace_hopper.jpg, nst/assets/kandinsky.png (our default inputs) and ../shared/images (the paper's).

Size and pooling. Gatys et al. do not say on what data, at what size or with which pooling they measured; their
released vgg_normalised.caffemodel ships with an average-pooling deploy prototxt whose input is 256 x 256
(leongatys/DeepTextures, Models/VGG_ave_pool_deploy.prototxt), and the texture paper downsamples its sources to
256² pixels. So: long side SIZE = 256 px (also the geometric mean of our default 128 px and the paper's 512 px) and
average pooling (the paper presets' pooling). The same scales serve max pooling; measured on the calibration set,
max pooling raises the median mean activation to 1.0 (block 1), 1.15 (block 2), 1.8 (block 3), 2.4 (block 4)
and 4.8 (block 5). Mean activations depend on image size (`size_sensitivity`): calibrated at 128 px, the scales
would be 1.08-1.23x these (median per block; 5-95% of filters within 0.42-2.12x, widest in block 5); at 512 px
0.77-0.86x (0.42-1.67x). Runs in about 10 s on 2 CPU cores (36 s with the two size checks).
"""
from __future__ import annotations

import hashlib
import importlib.util
import time
from pathlib import Path

import torch
from torch import nn

from nst.features import Encoder
from PIL import Image

from nst.images import fit_long_side, read_image, to_tensor
from nst.vgg import CAFFE, NORMALIZATION_FILE, conv_names, load_quantized, normalize, original_weights_path, \
    vgg19_features

CALIBRATION = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")  # colour photos only: see the docstring
SIZE = 256  # long side in px
POOLING = "avg"
DEAD_RATIO = 1e-4  # μ below this fraction of its layer's median: the filter (practically) never fires
MU_FLOOR = 0.0  # μ below this fraction of its layer's median is raised to it (0: the literal per-filter rule)


def skimage_data_dir() -> Path:
    """scikit-image's bundled data folder (located without importing it; install with the `dev` extra)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the calibration images come with scikit-image: pip install -e '.[dev]'")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def calibration_hashes() -> dict[str, str]:
    """SHA-256 of each calibration file (saved with the scales: another scikit-image may ship other bytes)."""
    return {name: hashlib.sha256((skimage_data_dir() / name).read_bytes()).hexdigest() for name in CALIBRATION}


def views(img: Image.Image) -> list[Image.Image]:
    """10 deterministic views of a photo: whole, centre 80% and 60%, top-left and bottom-right 60%, and mirrors."""
    w, h = img.size
    crops = [img]
    for f in (0.8, 0.6):
        cw, ch = round(w * f), round(h * f)
        crops.append(img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)))
    cw, ch = round(w * 0.6), round(h * 0.6)
    crops += [img.crop((0, 0, cw, ch)), img.crop((w - cw, h - ch, w, h))]
    return [v for crop in crops for v in (crop, crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT))]


def calibration_images(size: int = SIZE) -> list[torch.Tensor]:
    """The views of the calibration photographs as RGB [0, 1] tensors with long side `size` (photo by photo)."""
    return [to_tensor(view, fit_long_side(*view.size, size))
            for name in CALIBRATION for view in views(read_image(skimage_data_dir() / name))]


def relu_names() -> list[str]:
    """relu1_1, ..., relu5_4: the rectified output of each conv layer."""
    return [name.replace("conv", "relu") for name in conv_names()]


def mean_activations(net: nn.Module, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """{conv name: (C,) float64} mean relu output per filter: per-image spatial mean, averaged over images."""
    encoder, total = Encoder(net, relu_names()), None
    for image in images:
        with torch.no_grad():
            feats = encoder(CAFFE(image))
        means = [feats[relu].double().mean((0, 2, 3)) for relu in relu_names()]
        total = means if total is None else [t + m for t, m in zip(total, means)]
    return {conv: t / len(images) for conv, t in zip(conv_names(), total)}


def scales_from_means(means: dict[str, torch.Tensor], floor: float | None = None
                      ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-filter scales s = max(μ, floor · layer median) (float32), and the dead and floored masks.

    Dead: μ ≤ DEAD_RATIO · median. Floored: μ < floor · median, or dead under a floor > 0; s = floor · median.
    With floor = 0 (the literal rule) nothing is floored and a dead filter keeps s = 1.
    """
    floor = MU_FLOOR if floor is None else floor
    scales, dead, floored = {}, {}, {}
    for name, mu in means.items():
        median = mu.median()
        dead[name] = mu <= DEAD_RATIO * median
        floored[name] = (mu < floor * median) | (dead[name] & (floor > 0))
        s = torch.where(floored[name], floor * median, mu)
        scales[name] = torch.where(dead[name] & ~floored[name], torch.ones_like(mu), s).float()
    return scales, dead, floored


def network(state: dict[str, torch.Tensor], pooling: str = POOLING) -> nn.Sequential:
    """A frozen VGG19 with the given state_dict."""
    net = vgg19_features(pooling=pooling)
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


def size_sensitivity(original: dict[str, torch.Tensor], scales: dict[str, torch.Tensor], size: int) -> str:
    """Median and 5-95% range, per block, of the ratio of scales calibrated at `size` px to the shipped ones."""
    other = mean_activations(network(original), calibration_images(size))
    parts = []
    for block in range(1, 6):
        ratio = torch.cat([(other[n] / scales[n]).float() for n in conv_names() if n[4] == str(block)])
        q = torch.quantile(ratio, torch.tensor([0.05, 0.5, 0.95])).tolist()
        parts.append(f"block{block} {q[1]:.2f} [{q[0]:.2f}, {q[2]:.2f}]")
    return f"{size} px / {SIZE} px: " + ", ".join(parts)


def main() -> None:
    """Measure the scales, check the normalised network against the definition and save the file."""
    start = time.perf_counter()
    original = load_quantized(original_weights_path())
    images = calibration_images()
    scales, dead, floored = scales_from_means(mean_activations(network(original), images))
    check = mean_activations(network(normalize(original, scales)), images)
    exact = {n: ~(dead[n] | floored[n]) for n in conv_names()}
    error = max((check[n] - 1).abs()[exact[n]].max().item() for n in conv_names())
    below = max((check[n][floored[n]].max().item() for n in conv_names() if floored[n].any()), default=0.0)
    torch.save({"scale": scales, "dead": dead, "floored": floored, "mu_floor": MU_FLOOR, "images": calibration_hashes(),
                "size": SIZE, "pooling": POOLING}, NORMALIZATION_FILE)
    print(f"wrote {NORMALIZATION_FILE.name}: {sum(s.numel() for s in scales.values())} filters, "
          f"{sum(int(d.sum()) for d in dead.values())} dead "
          f"({', '.join(f'{n}: {d.nonzero().flatten().tolist()}' for n, d in dead.items() if d.any())}), "
          f"{sum(int(f.sum()) for f in floored.values())} floored at {MU_FLOOR} x layer median "
          f"({', '.join(f'{n}: {int(f.sum())}' for n, f in floored.items() if f.any())}); "
          f"normalised mean activations: max |mean - 1| = {error:.1e} (others), max {below:.3f} (floored); "
          f"{time.perf_counter() - start:.1f} s")
    for size in (128, 512):
        print(size_sensitivity(original, scales, size))


if __name__ == "__main__":
    main()
