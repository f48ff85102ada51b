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
import queue
import shlex
import tempfile
import threading
import time
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


@dataclass
class Transfer:
    """One image's download as it goes: its temporary file (None between files) and the bytes received."""

    part: Path | None = None
    received: int = 0


PARTS = threading.Lock()  # temporary files are made and removed under it (`fetch_images`' clean-up after a stop)


def download(url: str, target: Path, md5s: Iterable[str], timeout: float = 60.0, transfer: Transfer | None = None,
             stop: threading.Event | None = None) -> None:
    """Download to a temporary file beside `target`, check its length and MD5 (one of `md5s`), then rename it.

    Raises FetchError (HTTP error, connection lost, short body, wrong checksum, `stop` set); no partial file is ever
    left. `transfer`: where the temporary file and the bytes so far are shown to the caller."""
    transfer = transfer or Transfer()
    with PARTS:  # with the folder: another download's clean-up removes an empty one it made
        if stop is not None and stop.is_set():
            raise FetchError(f"{url}: stopped")
        created = not target.parent.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        transfer.part, transfer.received = Path(tmp), 0
    try:
        h = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as f:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                expected = response.headers.get("Content-Length")
                while chunk := response.read(1 << 16):
                    if stop is not None and stop.is_set():
                        raise FetchError(f"{url}: stopped")
                    f.write(chunk)
                    h.update(chunk)
                    transfer.received += len(chunk)
        size = transfer.received
        if expected is not None and expected.isdigit() and size != int(expected):
            raise FetchError(f"{url}: connection closed after {size} of {expected} bytes")
        md5s = list(md5s)
        if h.hexdigest() not in md5s:
            raise FetchError(f"{url}: MD5 {h.hexdigest()} is not the published file's {' or '.join(md5s)}")
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the image from the other users of a shared root
        with PARTS:
            if stop is not None and stop.is_set():
                raise FetchError(f"{url}: stopped")
            os.replace(tmp, target)
    except urllib.error.HTTPError as e:
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise FetchError(f"{url}: {e.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as e:  # ValueError: not a URL
        raise FetchError(f"{url}: {type(e).__name__}: {e}") from None
    finally:
        with PARTS:
            Path(tmp).unlink(missing_ok=True)
            transfer.part = None
            if created and not target.exists() and not any(target.parent.iterdir()):
                target.parent.rmdir()  # leave no empty folder behind either


def fetch_image(image: PaperImage, root: str | Path, base_url: str | None = None, force: bool = False,
                timeout: float = 60.0, transfer: Transfer | None = None, stop: threading.Event | None = None) -> str:
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
            download(url, target, md5s, timeout, transfer, stop)
            return f"fetched from {url}"
        except FetchError as e:
            errors.append(str(e))
    raise FetchError(f"{image.path}: " + "; ".join(errors))


def status_line(image: PaperImage, status: str) -> str:
    """fetch_image's status as the command prints it."""
    if status == "present":
        return f"already had {image.path}"
    if status == "kept":
        return f"kept {image.path}: not the published file (--force downloads it again)"
    return f"{status.replace('fetched', f'fetched {image.path}', 1)} ({image.title}, {image.credit})"


def fetch_images(root: str | Path, images: Iterable[PaperImage] = PAPER_IMAGES, base_url: str | None = None,
                 force: bool = False, timeout: float = 60.0,
                 report: Callable[[PaperImage, str], object] = lambda image, status: None,
                 deadline: float | None = None, jobs: int = 4) -> list[str]:
    """fetch_image for each image, `jobs` at a time (one failure does not stop the others), each reported as it
    ends; returns the failures' messages, one per image. `timeout`: seconds without data from a server; `deadline`:
    seconds for them all, after which the unfinished ones fail. On any exit (an interrupt included) no temporary
    file is left; an error writing under root (OSError) is raised once every download has stopped.

    Why not pooch (checksums, retries, atomic files): it has no deadline over several files and tries one URL per
    file (the Shipwreck has a second source); its temporary file is removed by the same kind of clean-up as here."""
    images, stop, results = list(images), threading.Event(), queue.SimpleQueue()
    transfers, todo = {image.path: Transfer() for image in images}, queue.SimpleQueue()
    for image in images:
        todo.put(image)

    def work() -> None:
        while not stop.is_set():
            try:
                image = todo.get_nowait()
            except queue.Empty:
                return
            began = time.monotonic()
            try:
                status = fetch_image(image, root, base_url, force, timeout, transfers[image.path], stop)
                if status.startswith("fetched"):
                    status += f" ({transfers[image.path].received / 1e6:.1f} MB in {time.monotonic() - began:.1f} s)"
                results.put((image, status, None))
            except Exception as e:  # FetchError, or an OSError of the root: for the caller's thread
                results.put((image, None, e))

    end = None if deadline is None else time.monotonic() + deadline
    failures, pending, raised = [], {image.path for image in images}, None
    try:
        for _ in range(max(1, min(jobs, len(images)))):
            threading.Thread(target=work, name="nst-fetch", daemon=True).start()
        while pending and (end is None or time.monotonic() < end):
            try:  # in short waits, so that Ctrl-C and the deadline are seen at once
                image, status, error = results.get(timeout=0.2)
            except queue.Empty:
                continue
            pending.discard(image.path)
            if error is None:
                report(image, status)
            elif isinstance(error, FetchError):
                failures.append(str(error))
            else:
                raised = raised or error
    finally:
        stop.set()
        with PARTS:  # the downloads still running: their temporary files go now, and no new one is made
            for transfer in transfers.values():
                if transfer.part is not None:
                    transfer.part.unlink(missing_ok=True)
    failures += [f"{path}: not fetched within the deadline of {deadline:g} s ({transfers[path].received:,} bytes "
                 "received)" for path in pending]
    place = {image.path: i for i, image in enumerate(images)}
    failures.sort(key=lambda line: place.get(line.partition(":")[0], len(place)))  # in the images' order
    if raised is not None:
        raise raised
    return failures
