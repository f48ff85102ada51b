"""Seconds for feed-forward WCT (multi-level, nst/universal.py) of one content image, from its pixels to the result.

    python benchmarks/universal_speed.py [--size 512] [--levels 1 2 3] [--repeats 5] [--decoders DIR]

The content is the embedded photo at --size px on its long side, the style the embedded painting at the same
size (the paper's and our default: the style resized to the content's width x height). Levels default to the
shipped decoders'; a level without a decoder file is timed with an untrained one (its time does not depend on the
weights), marked "untrained". Timed: every level's encoding of content and style, the WCT (float64 eigh) and the
decoding; not timed: loading the network and the decoders. Medians over --repeats after one warm-up.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nst import decoder as decoders
from nst import universal
from nst.assets import embedded
from nst.images import fit_long_side, load_image, read_image
from machine import describe  # benchmarks/machine.py (the script's folder is on sys.path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--levels", type=int, nargs="*", default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--decoders", default=None)
    args = p.parse_args()
    levels = args.levels or decoders.available(args.decoders)
    untrained = [L for L in levels if L not in decoders.available(args.decoders)]
    folder = Path(tempfile.mkdtemp())  # the trained files, and untrained stand-ins of the same shapes and cost
    for L in levels:
        if L in untrained:
            decoders.save(folder / decoders.file_name(L), decoders.decoder(L), L, {})
        else:
            shutil.copy(decoders.find(args.decoders, L), folder)
    size = fit_long_side(*read_image(embedded("grace_hopper")).size, args.size)
    content = load_image(embedded("grace_hopper"), size)
    style = load_image(embedded("kandinsky"), size)
    print(describe())
    print(f"content {size[0]}x{size[1]}, style {size[0]}x{size[1]}, levels {levels}"
          + (f" ({', '.join(f'relu{L}_1' for L in untrained)} untrained)" if untrained else ""))
    for L in levels:
        universal.decoder(str(folder), L, "cpu")
    universal.encoder("cpu")
    rows = []
    for subset in [levels] + ([[L] for L in levels] if len(levels) > 1 else []):
        times = []
        with torch.no_grad():
            for k in range(args.repeats + 1):
                t = time.perf_counter()
                universal.stylise(content, style, levels=subset, alphas=[1.0] * len(subset), directory=str(folder))
                if k:
                    times.append(time.perf_counter() - t)
        rows.append((subset, statistics.median(times), min(times), max(times)))
    print(f"{'levels':<16}{'median s':>10}{'min':>8}{'max':>8}")
    for subset, med, lo, hi in rows:
        print(f"{','.join(map(str, subset)):<16}{med:>10.3f}{lo:>8.3f}{hi:>8.3f}")


if __name__ == "__main__":
    main()
