"""The paper's images: where the configs look for them (images_root), and a checked download into a user cache.

Gatys et al. 2016 use Tübingen's Neckarfront (content) and five paintings (style). Four paintings are in the public
domain and the photo is CC BY 3.0; Picasso's "Femme nue assise" (Fig. 2E) is not in the public domain and is not
fetched. URLs and MD5s are those pystiche_papers lists for this paper (gatys_ecker_bethge_2015/_data.py; the
Shipwreck's Wikimedia source is pystiche's own image list). Files are stored as published, never resized.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shlex
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

SHARED = "../shared/images"  # beside the checkout, relative to the working directory (the layout of our CI)
USER_AGENT = "nst-sweeps/0.1 (python -m experiments.fetch_images; urllib)"  # Wikimedia refuses anonymous agents
WIKIMEDIA = "https://upload.wikimedia.org/wikipedia/commons"


@dataclass(frozen=True)
class PaperImage:
    path: str  # relative to the images root, as the presets read it: ${images_root}/content/tubingen.jpg
    title: str
    credit: str  # author, year; licence
    sources: tuple[tuple[str, str], ...]  # (url, md5), tried in order; the first that verifies is kept


PAPER_IMAGES = (
    PaperImage("content/tubingen.jpg", "Neckarfront in Tübingen", "Andreas Praefcke, 2003; CC BY 3.0",
               ((f"{WIKIMEDIA}/0/00/Tuebingen_Neckarfront.jpg", "dc9ad203263f34352e18bc29b03e1066"),)),
    PaperImage("style/starry_night.jpg", "The Starry Night", "Vincent van Gogh, 1889; public domain",
               ((f"{WIKIMEDIA}/thumb/e/ea/Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg/"
                 "1280px-Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg", "372e5bc438e3e8d0eb52cc6f7ef44760"),)),
    PaperImage("style/the_scream.jpg", "The Scream", "Edvard Munch, 1893; public domain",
               ((f"{WIKIMEDIA}/f/f4/The_Scream.jpg", "46ef64eea5a7b2d13dbadd420b531249"),)),
    PaperImage("style/shipwreck.jpg", "The Shipwreck of the Minotaur", "J. M. W. Turner, c. 1810; public domain",
               ((f"{WIKIMEDIA}/2/2e/Shipwreck_turner.jpg", "b7a51f010b591a01a6769161d1219739"),
                ("https://blog-imgs-51.fc2.com/b/e/l/bell1976brain/800px-Shipwreck_turner.jpg",
                 "4fb76d6f6fc1678cb74e858324d4d0cb"))),
    PaperImage("style/composition_vii.jpg", "Composition VII", "Wassily Kandinsky, 1913; public domain",
               ((f"{WIKIMEDIA}/b/b4/Vassily_Kandinsky%2C_1913_-_Composition_7.jpg",
                 "bfcbc420684bf27d2d8581fa8cc9522f"),)),
)


class FetchError(Exception):
    """A download that did not give the published file; nothing was written."""


def cache_dir() -> Path:
    """The per-user image cache: $XDG_CACHE_HOME/nst-sweeps/images, else ~/.cache/nst-sweeps/images."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "nst-sweeps" / "images"


def fetch_root() -> Path:
    """Where `python -m experiments.fetch_images` stores the images: $NST_IMAGES if set, else the cache."""
    return Path(os.environ["NST_IMAGES"]).expanduser() if os.environ.get("NST_IMAGES") else cache_dir()


def default_images_root(cwd: str | Path | None = None) -> str:
    """images_root's default: $NST_IMAGES, else ../shared/images (from `cwd`, default the working directory) if it
    is a directory, else the per-user cache."""
    if os.environ.get("NST_IMAGES"):
        return os.path.expanduser(os.environ["NST_IMAGES"])
    shared = Path(cwd) / SHARED if cwd is not None else Path(SHARED)
    return str(shared) if shared.is_dir() else str(cache_dir())


def missing_hint(path: str | Path) -> str | None:
    """For a missing file laid out as one of the paper's images (.../content/tubingen.jpg), how to download them."""
    path = Path(path)
    if "/".join(path.parts[-2:]) not in {image.path for image in PAPER_IMAGES}:
        return None
    root = path.parent.parent
    same = os.path.abspath(root) == os.path.abspath(fetch_root())
    return "download the paper's images with: python -m experiments.fetch_images" + (
        "" if same else f" --root {shlex.quote(str(root))}")


def md5sum(path: str | Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, target: Path, md5s: Iterable[str], timeout: float = 60.0) -> None:
    """Download to a temporary file beside `target`, check its length and MD5 (one of `md5s`), then rename it.

    Raises FetchError (HTTP error, connection lost, short body, wrong checksum); no partial file is ever left."""
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        h, size = hashlib.md5(usedforsecurity=False), 0
        with os.fdopen(fd, "wb") as f:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                expected = response.headers.get("Content-Length")
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
        if expected is not None and expected.isdigit() and size != int(expected):
            raise FetchError(f"{url}: connection closed after {size} of {expected} bytes")
        md5s = list(md5s)
        if h.hexdigest() not in md5s:
            raise FetchError(f"{url}: MD5 {h.hexdigest()} is not the published file's {' or '.join(md5s)}")
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the image from the other users of a shared root
        os.replace(tmp, target)
    except urllib.error.HTTPError as e:
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise FetchError(f"{url}: {e.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as e:  # ValueError: not a URL
        raise FetchError(f"{url}: {type(e).__name__}: {e}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
        if created and not target.exists() and not any(target.parent.iterdir()):
            target.parent.rmdir()  # leave no empty folder behind either


def fetch_image(image: PaperImage, root: str | Path, base_url: str | None = None, force: bool = False,
                timeout: float = 60.0) -> str:
    """Make sure root/image.path is the published file; returns "present", "kept" or "fetched from <url>".

    A file already there with a published MD5 is left alone ("present"); one with another MD5 (e.g. a user's own
    downscaled copy) is kept unless `force` ("kept"). `base_url` replaces the sources by a mirror that holds the
    same files as <base_url>/<image.path>."""
    target = Path(root) / image.path
    known = [md5 for _, md5 in image.sources]
    if target.is_file():
        if md5sum(target) in known:
            return "present"
        if not force:
            return "kept"
    sources = [(f"{base_url.rstrip('/')}/{image.path}", known)] if base_url else [(u, [m]) for u, m in image.sources]
    errors = []
    for url, md5s in sources:
        try:
            download(url, target, md5s, timeout)
            return f"fetched from {url}"
        except FetchError as e:
            errors.append(str(e))
    raise FetchError(f"{image.path}: " + "; ".join(errors))


def fetch_images(root: str | Path, images: Iterable[PaperImage] = PAPER_IMAGES, base_url: str | None = None,
                 force: bool = False, timeout: float = 60.0,
                 report: Callable[[PaperImage, str], object] = lambda image, status: None) -> list[str]:
    """fetch_image for each image (one failure does not stop the others); returns the failures' messages."""
    failures = []
    for image in images:
        try:
            report(image, fetch_image(image, root, base_url, force, timeout))
        except FetchError as e:
            failures.append(str(e))
    return failures
