"""`python -m experiments.fetch_images [--root DIR]`: download the paper's images (nst/fetch.py) for the presets."""
from __future__ import annotations

import os
import signal
import sys

from experiments.errors import OneLineParser
from nst.fetch import PAPER_IMAGES, default_images_root, fetch_images, fetch_root, status_line
from nst.processes import unwind_once


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m experiments.fetch_images",
        description="Download Gatys et al. 2016's images (Tübingen, Starry Night, The Scream, Shipwreck of the "
                    "Minotaur, Composition VII; not Picasso's Femme nue assise, which is not public domain), "
                    "check their MD5 and store them unresized as content/tubingen.jpg, style/<name>.jpg.")
    parser.add_argument("--root", default=None,
                        help=f"where to store them (default: $NST_IMAGES if set, else {fetch_root()})")
    parser.add_argument("--base-url", default=None,
                        help="a mirror holding the same files as BASE_URL/content/tubingen.jpg, BASE_URL/style/...")
    parser.add_argument("--force", action="store_true", help="replace files whose MD5 is not the published one")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up")
    parser.add_argument("--deadline", type=float, default=300.0,
                        help="seconds for all the downloads; the files not fetched by then fail (default 300)")
    parser.add_argument("--jobs", type=int, default=4, help="downloads at once (default 4)")
    args = parser.parse_args(argv)
    for name in ("timeout", "deadline", "jobs"):
        if not getattr(args, name) > 0:  # one line, as every other bad value
            print(f"error: --{name} {getattr(args, name):g} must be > 0", file=sys.stderr)
            return 2
    root = os.path.expanduser(args.root) if args.root else str(fetch_root())
    unwind_once(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # as Ctrl-C does: no temporary file is left
    print(f"fetching {len(PAPER_IMAGES)} images into {root} ({args.jobs} at a time, at most {args.deadline:g} s)")
    try:
        failures = fetch_images(root, PAPER_IMAGES, args.base_url, args.force, args.timeout, deadline=args.deadline,
                                jobs=args.jobs, report=lambda image, status: print(status_line(image, status)))
    except KeyboardInterrupt as e:
        name = e.args[0] if e.args else "SIGINT"
        print(f"interrupted ({name}): no partial file is left in {root}", file=sys.stderr)
        return 128 + signal.Signals[name].value
    except OSError as e:  # the root cannot be created, written or read
        print(f"error: cannot store the images in {root}: {e.strerror or e}", file=sys.stderr)
        return 2
    if failures:
        for failure in failures:  # one line each, with its reason
            print(failure.replace("\n", " "), file=sys.stderr)
        print(f"error: {len(failures)} of {len(PAPER_IMAGES)} images not fetched into {root} (above)", file=sys.stderr)
        return 2
    print(f"images in {root}; the presets read images_root = {default_images_root()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
