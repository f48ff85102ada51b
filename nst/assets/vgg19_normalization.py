"""Derive the normalised VGG19 of Gatys et al. 2016 (Sec. 2) offline: `python -m nst.assets.vgg19_normalization`.

Definition. Every conv filter k of layer l gets a scale s_l[k] = μ_l[k], its mean rectified activation (relu
output) over the calibration images and positions, and the weights become W_l[k, c] · s_{l−1}[c] / s_l[k],
b_l[k] / s_l[k] (s_0 = 1; nst/vgg.py `normalize`). Then every relu_l[k] is the original one divided by s_l[k]
(ReLU and both poolings commute with positive per-channel scales), so the network computes the same function up
to per-channel scales and, on the calibration set, every filter's mean activation is exactly 1. Because layer l's
pre-activation is unchanged by the rescaling of layers < l, measuring μ_l on the "already normalised" network
equals measuring it on the original one: one forward pass of the original network per image gives all 16 layers.
`main` checks the result by re-measuring on the normalised network (max |mean − 1| is printed).

Calibration set. The authors used ImageNet; we have no ImageNet offline. We use the colour photographs bundled in
two wheels, licence-clean: scikit-image's astronaut, chelsea, coffee and rocket, and scikit-learn's china (a
pagoda among trees, water, hazy sky) and flower (a dahlia on green foliage). What the set must hold is hues, not
many images: a filter that no calibration photo drives gets a tiny μ, so a huge scale, and then dominates every
loss at its layer on images that do drive it. Grey photos never drive colour-opponent filters (calibrated on six
grey scikit-image photos alone, 23 filters came out dead). The four scikit-image photos hold no foliage and no
bright blue: conv1_1's filter 12 (green against red and blue) came out at 2.8% of its layer's median μ and conv2_1's
filter 123 (saturated blue) at 8e-6 (dead); with china and flower they are at 58% and 13%, and no filter is dead
(the smallest μ anywhere is 1.6% of its layer's median). Measured effect on the paper's style loss at the presets'
white-noise start (benchmarks/style_balance.py: Tübingen's canvas, seed 0, std 0.1, average pooling, paper
convention, E_l of relu1_1 ... relu5_1 against each of the paper's four paintings; spread = max / min over the five
layers of E_l, and of each layer's share of the style gradient ‖∇_x E_l‖):
  calibration                        run at 128 px: E, gradient   256 px: E, gradient      512 px: E, gradient
  original weights                   4.7e4-2.3e5, 1.4e5-2.7e5     7.2e4-3.3e5, 1.0e5-4.2e5  8.7e4-1.9e5, 8.5e4-4.5e5
  4 skimage photos, 256 px (before)* 6.6-910, 69-3.2e3            52-1.9e3, 535-2.7e3       -
  4 skimage photos, 512 px           2.7-1.5e3, 9.4-1.2e3         7.2-2.4e3, 93-908         8.9-3.4e3, 111-1.7e3
  6 photos, 128 px                   -                            4.6-14, 19-74             -
  6 photos, 512 px                   -                            2.6-6.2, 5.1-11           -
  6 photos, native size (shipped)    2.3-3.9, 4.4-6.2             2.2-5.2, 4.7-12           2.6-4.8, 7.1-15
(*: against Composition VII and Starry Night only; -: not measured.) So the two scikit-learn photos, not the size,
balance the layers: at the white-noise start each of the five layers now gets 3-49% of the style gradient (relu1_1
took 65-99% before; on the original weights relu4_1 takes over 90%). Against the Kandinsky (nst/assets) at 64 px,
tested: 4.7x.

Views and size. Each photo enters as 10 deterministic views (`views`): the whole image, centre crops of 80% and 60%
of each side, top-left and bottom-right crops of 60%, and the mirror image of each; every photo has the same number
of views, so each photo counts equally: μ_l = mean over views of the per-view spatial mean. The views are taken at
the photos' own resolution (SIZE = None: 451-640 px on the long side, the crops down to 271 px; nothing is
resampled, the crops are sub-windows). Mean activations depend on the image size (`size_sensitivity`, printed by
`main`): calibrated at 128 px the scales would be 1.19-1.36x these (median per block; 5-95% of filters within
0.38-3.05x, widest in block 5), at 256 px 1.04-1.12x, at 512 px 0.90-0.95x. Of the sizes in the table, 512 px
balances as well as native and 128 px does not. We ship native because it involves no choice of size and no
resampling (our choice; Gatys et al. do not say on what size they measured).

Dead filters keep their scale (s = 1), as the per-filter rule cannot divide by 0: a filter counts as dead when
μ_l[k] ≤ DEAD_RATIO · median_k μ_l. With the shipped set none is. (The previous set's conv2_1 #123 was: kept at
s = 1 it held 91% of E(relu2_1) at the noise start. A floor on μ at 0.2 x its layer's median, measured then,
balanced that set's gradient at 8x; with the present set no floor is needed and none is applied.)

Pooling. Average pooling, the paper presets' (Sec. 2); Gatys' released vgg_normalised.caffemodel ships with an
average-pooling deploy prototxt (leongatys/DeepTextures, Models/VGG_ave_pool_deploy.prototxt). The same scales
serve max pooling (measured on the previous set, max pooling raised the median mean activation to 1.0 in block 1
up to 4.8 in block 5). Runs in about 40 s on 2 CPU cores (80 s with the three size checks).

Licences (photos bundled inside the wheels, nothing downloaded):
  astronaut.png   scikit-image; Eileen Collins, NASA Great Images (flic.kr/p/r9qvLn); public domain.
  chelsea.png     scikit-image; Chelsea the cat, Stefan van der Walt; CC0.
  coffee.png      scikit-image; coffee cup, Rachel Michetti / Pikolo Espresso Bar; CC0.
  rocket.jpg      scikit-image; DSCOVR launch on Falcon 9, SpaceX photos; public domain.
  china.jpg       scikit-learn; danielbuechele on Flickr (photo 6061409035); CC BY 2.0.
  flower.jpg      scikit-learn; vultilion on Flickr (photo 6056698931); CC BY 2.0.
(As stated in skimage/data/_fetchers.py and sklearn/datasets/images/README.txt. Only per-filter statistics derived
from the photos ship here, not the photos.) Left out: scikit-image's grey photos (see above), hubble_deep_field.jpg
and retina.jpg (not natural photographs), moon.png and motorcycle_*.png (no licence given); microscopy and synthetic
images. Held out (never calibrated on): matplotlib's grace_hopper.jpg, nst/assets/kandinsky.png (our default
inputs) and ../shared/images (the paper's). No painting is in the set, though issue 9 asked for paintings too: the
only licence-clean ones within reach offline are our bundled Kandinsky, kept out so that the held-out test covers a
painting, and the paper's four, which are the figures' own inputs (and absent from a user's clone).
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
from nst.vgg import CAFFE, NORMALIZATION_FILE, Preprocess, conv_names, load_quantized, normalize, \
    original_weights_path, vgg19_features

# colour photos only, as (package, file): see the docstring
CALIBRATION = (("skimage", "astronaut.png"), ("skimage", "chelsea.png"), ("skimage", "coffee.png"),
               ("skimage", "rocket.jpg"), ("sklearn", "china.jpg"), ("sklearn", "flower.jpg"))
DATA_DIRS = {"skimage": "data", "sklearn": "datasets/images"}  # where each package keeps its bundled photos
SIZE = None  # long side in px; None: each view at its own (native) resolution, nothing resampled
POOLING = "avg"
DEAD_RATIO = 1e-4  # μ below this fraction of its layer's median: the filter (practically) never fires


def data_file(package: str, name: str) -> Path:
    """A photo bundled in an installed package (located without importing it; install with the `dev` extra)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the calibration photos come with scikit-image and scikit-learn: pip install -e "
                                f"'.[dev]' ({package} is missing)")
    return Path(list(spec.submodule_search_locations)[0]) / DATA_DIRS[package] / name


def calibration_hashes() -> dict[str, str]:
    """SHA-256 of each calibration file (saved with the scales: another release may ship other bytes)."""
    return {name: hashlib.sha256(data_file(package, name).read_bytes()).hexdigest() for package, name in CALIBRATION}


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


def calibration_images(size: int | None = SIZE) -> list[torch.Tensor]:
    """The calibration photos' views as RGB [0, 1] tensors (long side `size`; None: native), photo by photo."""
    return [to_tensor(view, None if size is None else fit_long_side(*view.size, size))
            for package, name in CALIBRATION for view in views(read_image(data_file(package, name)))]


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


def scales_from_means(means: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-filter scales s = μ (float32) and the dead mask (μ ≤ DEAD_RATIO · layer median; those keep s = 1)."""
    scales, dead = {}, {}
    for name, mu in means.items():
        dead[name] = mu <= DEAD_RATIO * mu.median()
        scales[name] = torch.where(dead[name], torch.ones_like(mu), mu).float()
    return scales, dead


def style_balance(net: nn.Module, prep: Preprocess, canvas: torch.Size, style: torch.Tensor, *, seed: int = 0,
                  noise_std: float = 0.1) -> tuple[list[float], list[float]]:
    """What the normalisation is for, at the paper presets' start (white noise 0.5 + noise_std·N(0, 1) from `seed`
    on a `canvas`-shaped image; style RGB [0, 1]): the E_l of relu1_1 ... relu5_1 (paper convention) and each
    layer's share of the style gradient, ‖∇_x E_l‖ / Σ_k ‖∇_x E_k‖ (equal w_l cancel)."""
    from nst.transfer import Targets

    layers = [f"relu{block}_1" for block in range(1, 6)]
    targets = Targets(net, None, prep(style), content_layers=[], style_layers=layers, convention="paper")
    x = (0.5 + noise_std * torch.randn(canvas, generator=torch.Generator().manual_seed(seed))).requires_grad_(True)
    _, terms = targets.terms(x, targets.encoder(prep(x)))
    energies = [terms[name].sum() for name in layers]
    norms = [torch.autograd.grad(e, x, retain_graph=True)[0].norm().item() for e in energies]
    return [e.item() for e in energies], [n / sum(norms) for n in norms]


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
    return f"{size} px / {SIZE or 'native'} px: " + ", ".join(parts)


def check() -> float:
    """Re-measure the shipped normalised network on the calibration set: max |mean activation - 1| over its live
    filters (~50 s on 2 cores; not in the test suite, which checks the file's calibration hashes and that the
    normalised features are the original ones over the shipped scales)."""
    from nst.vgg import NORMALIZED, vgg19

    shipped = torch.load(NORMALIZATION_FILE, weights_only=True)
    if shipped["images"] != calibration_hashes() or (shipped["size"], shipped["pooling"]) != (SIZE, POOLING):
        raise SystemExit(f"{NORMALIZATION_FILE.name} was made from other calibration images or settings: rerun "
                         "python -m nst.assets.vgg19_normalization")
    means = mean_activations(vgg19(NORMALIZED, pooling=POOLING)[0], calibration_images())
    return max((means[n] - 1).abs()[~shipped["dead"][n]].max().item() for n in conv_names())


def main(argv: list[str] | None = None) -> None:
    """Measure the scales, check the normalised network against the definition and save the file; with
    `--check`, only re-measure the shipped file (exit 1 above 1e-3)."""
    import sys

    if (sys.argv[1:] if argv is None else argv) == ["--check"]:
        error = check()
        print(f"{NORMALIZATION_FILE.name}: normalised mean activations on the calibration set: "
              f"max |mean - 1| = {error:.1e}")
        raise SystemExit(0 if error < 1e-3 else 1)
    start = time.perf_counter()
    original = load_quantized(original_weights_path())
    images = calibration_images()
    scales, dead = scales_from_means(mean_activations(network(original), images))
    measured = mean_activations(network(normalize(original, scales)), images)
    error = max((measured[n] - 1).abs()[~dead[n]].max().item() for n in conv_names())
    torch.save({"scale": scales, "dead": dead, "images": calibration_hashes(), "size": SIZE, "pooling": POOLING},
               NORMALIZATION_FILE)
    print(f"wrote {NORMALIZATION_FILE.name}: {sum(s.numel() for s in scales.values())} filters, "
          f"{sum(int(d.sum()) for d in dead.values())} dead "
          f"({', '.join(f'{n}: {d.nonzero().flatten().tolist()}' for n, d in dead.items() if d.any())}); "
          f"normalised mean activations: max |mean - 1| = {error:.1e}; {time.perf_counter() - start:.1f} s")
    for size in (128, 256, 512):
        print(size_sensitivity(original, scales, size))


if __name__ == "__main__":
    main()
