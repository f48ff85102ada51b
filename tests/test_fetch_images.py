"""The paper's images: checked, atomic downloads from a local HTTP server, images_root's default, and the hints."""
import hashlib
import http.server
import io
import os
import subprocess
import sys
import signal
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from nst.fetch import (PAPER_IMAGES, FetchError, PaperImage, cache_dir, default_images_root, fetch_image,
                       fetch_images)
from nst.images import load_image
from tests.conftest import ROOT, run_app, run_cli


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((24, 16), 40 + seed).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


GOOD, OTHER = jpeg(1), jpeg(2)
MD5 = hashlib.md5(GOOD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.routes: path -> body, or (body, n) to send the full Content-Length but only n bytes."""

    def do_GET(self):
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        if route == "hang":  # a mirror that accepts the connection and never answers
            time.sleep(30)
            return
        if route == "slow":  # the headers of a large file, then a trickle of bytes
            self.send_response(200)
            self.send_header("Content-Length", str(10 ** 7))
            self.end_headers()
            try:
                for _ in range(300):
                    self.wfile.write(b"x" * 100)
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client left
                pass
            return
        body, sent = route if isinstance(route, tuple) else (route, len(route))
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:sent])  # HTTP/1.0: the connection closes after the response

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # urllib would send 127.0.0.1 to a configured proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.routes, httpd.hits = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def image(server, *sources: tuple[str, str]) -> PaperImage:
    return PaperImage("content/a.jpg", "A", "nobody; test", tuple((server.url + path, md5) for path, md5 in sources))


def files(root) -> list[str]:
    """Every file under root (temporary ones included), relative."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_good_checksum_stores_the_file(server, tmp_path):
    server.routes["/a.jpg"] = GOOD
    status = fetch_image(image(server, ("/a.jpg", MD5)), tmp_path)
    assert status == f"fetched from {server.url}/a.jpg"
    assert (tmp_path / "content" / "a.jpg").read_bytes() == GOOD and files(tmp_path) == ["content/a.jpg"]
    assert (tmp_path / "content" / "a.jpg").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("route, message", [
    (OTHER, f"is not the published file's {MD5}"),  # wrong checksum
    (None, "HTTP 404"),
    ((GOOD, len(GOOD) // 2), "connection closed after"),  # interrupted after part of Content-Length
])
def test_failed_download_is_an_error_and_leaves_no_file(server, tmp_path, route, message):
    if route is not None:
        server.routes["/a.jpg"] = route
    with pytest.raises(FetchError, match=message) as e:
        fetch_image(image(server, ("/a.jpg", MD5)), tmp_path)
    assert str(e.value).startswith("content/a.jpg: ") and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # neither the target, nor a temporary .part file, nor its folder


def test_second_run_skips_what_is_present_and_keeps_a_users_own_file(server, tmp_path):
    server.routes["/a.jpg"] = GOOD
    wanted = image(server, ("/a.jpg", MD5))
    assert fetch_image(wanted, tmp_path).startswith("fetched")
    assert fetch_image(wanted, tmp_path) == "present" and server.hits == ["/a.jpg"]
    (tmp_path / "content" / "a.jpg").write_bytes(OTHER)  # e.g. a downscaled copy: not replaced unless forced
    assert fetch_image(wanted, tmp_path) == "kept" and (tmp_path / "content" / "a.jpg").read_bytes() == OTHER
    assert fetch_image(wanted, tmp_path, force=True).startswith("fetched")
    assert (tmp_path / "content" / "a.jpg").read_bytes() == GOOD and len(server.hits) == 2


def test_next_source_mirror_and_one_failure_does_not_stop_the_others(server, tmp_path):
    server.routes["/b.jpg"] = GOOD
    assert fetch_image(image(server, ("/gone.jpg", MD5), ("/b.jpg", MD5)), tmp_path).endswith("/b.jpg")
    server.routes["/mirror/content/a.jpg"] = GOOD  # --base-url: the same files under <base>/<path>
    (tmp_path / "content" / "a.jpg").unlink()
    assert fetch_image(image(server, ("/gone.jpg", MD5)), tmp_path, base_url=server.url + "/mirror/").startswith(
        f"fetched from {server.url}/mirror/content/a.jpg")
    missing = PaperImage("style/b.jpg", "B", "nobody; test", ((server.url + "/nope.jpg", MD5),))
    seen = []
    failures = fetch_images(tmp_path, [missing, image(server, ("/b.jpg", MD5))],
                            report=lambda img, status: seen.append((img.path, status)))
    assert seen == [("content/a.jpg", "present")] and len(failures) == 1 and "style/b.jpg: " in failures[0]


def test_paper_images_list():
    """The presets' layout; Picasso's Femme nue assise (not public domain) is not fetched."""
    assert [i.path for i in PAPER_IMAGES] == ["content/tubingen.jpg", "style/starry_night.jpg",
                                              "style/the_scream.jpg", "style/shipwreck.jpg",
                                              "style/composition_vii.jpg"]
    assert all(url.startswith("https://") and len(md5) == 32 for i in PAPER_IMAGES for url, md5 in i.sources)
    confs = {p.stem for p in (ROOT / "conf" / "painting").glob("*.yaml")}
    paintings = {i.path.split("/")[1].replace(".jpg", "") for i in PAPER_IMAGES[1:]}
    assert confs == paintings | {f"{name}_matched" for name in paintings}  # conf/experiment/paper_fig2_matched


def test_images_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "nst-sweeps" / "images"
    monkeypatch.setenv("NST_IMAGES", "/data/images")
    assert default_images_root(tmp_path / "work" / "repo") == "/data/images"
    monkeypatch.delenv("NST_IMAGES")
    repo = tmp_path / "work" / "repo"
    repo.mkdir(parents=True)
    assert default_images_root(repo) == str(cache_dir())
    (tmp_path / "work" / "shared" / "images").mkdir(parents=True)
    assert default_images_root(repo) == str(repo / ".." / "shared" / "images")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored, as the XDG spec says
    assert cache_dir() == Path.home() / ".cache" / "nst-sweeps" / "images"


def test_config_reads_images_root_from_the_resolver(monkeypatch):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import experiments  # noqa: F401  (registers the resolvers)

    monkeypatch.setenv("NST_IMAGES", "/data/images")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="conf", version_base="1.3"):
            cfg = compose("config", overrides=["experiment=paper_fig2", "painting=the_scream"])
            assert cfg.content == "/data/images/content/tubingen.jpg"
            assert cfg.style == "/data/images/style/the_scream.jpg"
    finally:
        GlobalHydra.instance().clear()


def test_missing_paper_image_says_how_to_fetch_it(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_image(tmp_path / "content" / "tubingen.jpg")
    assert str(e.value) == (f"image '{tmp_path}/content/tubingen.jpg' does not exist; download the paper's images "
                            f"with: python -m experiments.fetch_images --root {tmp_path}")
    with pytest.raises(FileNotFoundError) as e:
        load_image(tmp_path / "mine.jpg")
    assert str(e.value) == f"image '{tmp_path}/mine.jpg' does not exist"


def test_cli_failure_is_one_error_line(server, tmp_path):
    server.routes["/m/content/tubingen.jpg"] = OTHER  # a bad checksum; every other file is a 404
    r = run_cli("experiments.fetch_images", "--root", str(tmp_path / "imgs"), "--base-url", server.url + "/m",
                "--timeout", "10")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()  # one line per file, with its reason, then the error line
    assert len(lines) == 6 and lines[-1].startswith("error: 5 of 5 images not fetched"), r.stderr
    assert [line.partition(":")[0] for line in lines[:5]] == [image.path for image in PAPER_IMAGES]
    assert "is not the published file's dc9ad203263f34352e18bc29b03e1066" in lines[0]
    assert all("HTTP 404" in line for line in lines[1:5])
    assert not (tmp_path / "imgs").exists() or files(tmp_path / "imgs") == []


def test_paper_preset_without_images_prints_the_hint(tmp_path):
    """A fresh layout: a paper preset's sweep, none of whose jobs can run, is refused with the hint, before it
    starts (experiments.sweeps.check_sweep)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = f"'{empty}/content/tubingen.jpg' does not exist"
    hint = f"download the paper's images with: python -m experiments.fetch_images --root {empty}"
    r = run_app("experiments.transfer", "experiment=paper_fig2", f"images_root={empty}", "debug=tiny",
                f"hydra.sweep.dir={tmp_path / 'sweep'}")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr, r.stderr[-2000:]
    assert len(errors) == 1 and missing in errors[0] and errors[0].endswith(hint), r.stderr[-2000:]
    assert not (tmp_path / "sweep").exists()
    # one job of it (hydra.mode=RUN): exit 2 and one error line
    r = run_app("experiments.transfer", "experiment=paper_fig2", "hydra.mode=RUN", "painting=starry_night",
                f"images_root={empty}", "debug=tiny", f"hydra.run.dir={tmp_path / 'one'}")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(errors) == 1 and missing in errors[0] and errors[0].endswith(hint), r.stderr[-2000:]


@pytest.mark.parametrize("ci, outcome", [("", "1 skipped"), ("true", "1 error")])
def test_paper_images_marker_skips_or_fails_under_ci(tmp_path, ci, outcome):
    """tests/conftest.py: a paper_images test is skipped when the images are absent, and fails under CI=true."""
    env = dict(os.environ, NST_IMAGES=str(tmp_path), CI=ci)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_cli.py::test_seed_grid_runs_from_content_to_style"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert outcome in r.stdout, r.stdout[-2000:]
    reason = "CI=true requires the paper images" if ci else "paper images absent from"
    assert reason in r.stdout and "content/tubingen.jpg" in r.stdout, r.stdout[-2000:]
    assert r.returncode == (1 if ci else 0)


def test_a_mirror_that_never_answers_fails_each_file_at_the_deadline_in_parallel(server, tmp_path):
    """Five files from a mirror that accepts and never answers, 60 s timeout each: one after another, minutes of
    silence and a .part left; now all at once, each failed at the deadline in one line, nothing left."""
    for image in PAPER_IMAGES:
        server.routes[f"/m/{image.path}"] = "hang"
    began = time.monotonic()
    r = run_cli("experiments.fetch_images", "--root", str(tmp_path / "imgs"), "--base-url", server.url + "/m",
                "--timeout", "60", "--deadline", "2", "--jobs", "5")
    assert time.monotonic() - began < 20, "waited for the timeout, not the deadline"
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.startswith("fetching 5 images into"), r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 6 and all("not fetched within the deadline of 2 s" in line for line in lines[:5]), r.stderr
    assert len(server.hits) == 5  # in parallel: every file was asked for before the deadline
    assert not (tmp_path / "imgs").exists() or files(tmp_path / "imgs") == []


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_download_leaves_no_partial_file(server, tmp_path, signum, code):
    """SIGTERM left .part files; SIGINT said TimeoutError for every file. Now: one line, exit 143 or 130, no file."""
    for image in PAPER_IMAGES:
        server.routes[f"/m/{image.path}"] = "slow"
    root = tmp_path / "imgs"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.fetch_images", "--root", str(root), "--base-url",
                             server.url + "/m"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not list(root.rglob("*.part")) and time.monotonic() < deadline:  # downloads under way
        time.sleep(0.05)
    assert list(root.rglob("*.part")), "no download started"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code and "Traceback" not in err, err
    assert err.strip().startswith("interrupted") and len(err.strip().splitlines()) == 1, err
    assert files(root) == [], files(root)
