"""`vidtok-bench data verify|fetch` and the resumable, hash-checked downloader (local HTTP server only)."""
from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from vidtok_bench import catalog
from vidtok_bench.catalog import UVG_FRAME_BYTES, CatalogEntry, Download, ExpectedVideo
from vidtok_bench.cli import main
from vidtok_bench.download import DownloadError, download


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # keep test output clean
        pass

    def do_GET(self):
        srv = self.server
        data = srv.files.get(self.path)
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        m = re.match(r"bytes=(\d+)-$", rng or "")
        if m and srv.ranges:
            start = int(m.group(1))
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if srv.cut_after is not None:  # drop the connection part-way, once
            body, srv.cut_after = body[: srv.cut_after], None
            self.close_connection = True
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.requests, srv.ranges, srv.cut_after = {}, [], True, None
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.cut_after = 100_000
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match=r"interrupted after 100000 of 300000 bytes; rerun to resume"):
        download(server.url + "/f.bin", dest, sha256=sha(PAYLOAD))
    assert not dest.exists() and (tmp_path / "f.bin.part").stat().st_size == 100_000
    assert download(server.url + "/f.bin", dest, sha256=sha(PAYLOAD), size=len(PAYLOAD)) == dest
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "f.bin.part").exists()
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=100000-")]
    download(server.url + "/f.bin", dest, sha256=sha(PAYLOAD))  # complete and matching: no request
    assert len(server.requests) == 2


def test_server_without_range_support_restarts(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.ranges = False
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes from elsewhere")
    download(server.url + "/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD))
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_complete_part_file_gets_416_and_is_kept(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    download(server.url + "/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD))
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD and server.requests == [("/f.bin", "bytes=300000-")]


def test_hash_mismatch_removes_the_download(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match=r"sha256 [0-9a-f]{64} differs from the expected 0{64}; the download was removed"):
        download(server.url + "/f.bin", tmp_path / "f.bin", sha256="0" * 64)
    assert os.listdir(tmp_path) == []


def test_http_error_and_offline(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url + "/nope", tmp_path / "x")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"cannot reach http://127.0.0.1:\d+/x.zip \(.*\); offline\? download it by hand") as e:
        download(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", timeout=5)
    assert "\n" not in str(e.value)


def tiny_zip(frames=3, bad_member=False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for seq in ("s1", "s2"):
            for i in range(frames):
                img = io.BytesIO()
                Image.fromarray(np.full((6, 8, 3), 40 * i, np.uint8)).save(img, format="JPEG")
                z.writestr(f"pack/frames/{seq}/{i:05d}.jpg", img.getvalue())
        if bad_member:
            z.writestr("../escape.txt", "x")
    return buf.getvalue()


@pytest.fixture
def tiny_entry(server, monkeypatch):
    data = tiny_zip()
    server.files["/tiny.zip"] = data
    e = CatalogEntry(
        name="tiny", title="test set", layout="sequences",
        videos=(ExpectedVideo("s1", ("s1",), frames=3), ExpectedVideo("s2", ("s2",), frames=3)),
        downloads=(Download(server.url + "/tiny.zip", sha256=sha(data), size_bytes=len(data)),),
        subdirs=("pack/frames",), frame_height=6, how_to_get="ask the test", run_hint="vidtok-bench run dataset=x dataset.root={root}",
    )
    monkeypatch.setitem(catalog.CATALOG, "tiny", e)
    return e


def test_fetch_unpacks_and_verifies(server, tiny_entry, tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    assert main(["data", "verify", "tiny", "--root", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "MISSING s1" in out and "0 of 2 videos ok" in out and "ask the test" in err
    assert main(["data", "fetch", "tiny", "--root", str(root)]) == 0
    out, _ = capsys.readouterr()
    assert "ok      s1: pack/frames/s1" in out and "2 of 2 videos ok" in out and f"dataset.root={root}" in out
    assert (root / "tiny.zip").exists() and len(server.requests) == 1
    assert main(["data", "fetch", "tiny", "--root", str(root)]) == 0  # complete: nothing downloaded again
    assert "already complete" in capsys.readouterr()[0] and len(server.requests) == 1
    (root / "pack" / "frames" / "s2" / "00001.jpg").unlink()
    assert main(["data", "verify", "tiny", "--root", str(root)]) == 1
    assert "BAD     s2:" in capsys.readouterr()[0]


def test_fetch_refuses_a_zip_escaping_the_root(server, tiny_entry, tmp_path, monkeypatch, capsys):
    data = tiny_zip(bad_member=True)
    server.files["/tiny.zip"] = data
    monkeypatch.setitem(catalog.CATALOG, "tiny", CatalogEntry(**{**tiny_entry.__dict__, "downloads": (Download(server.url + "/tiny.zip"),)}))
    assert main(["data", "fetch", "tiny", "--root", str(tmp_path)]) == 2
    assert "would land outside" in capsys.readouterr()[1] and not (tmp_path.parent / "escape.txt").exists()


def test_fetch_offline_is_one_line(tiny_entry, tmp_path, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(catalog.CATALOG, "tiny", CatalogEntry(**{**tiny_entry.__dict__, "downloads": (Download(f"http://127.0.0.1:{port}/t.zip"),)}))
    assert main(["data", "fetch", "tiny", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr()[1].strip()
    assert err.startswith("vidtok-bench: error: cannot reach") and "\n" not in err


@pytest.mark.parametrize("name", ["uvg", "davis2017_val"])
def test_a_root_that_is_no_directory_is_one_line(name, tmp_path, capsys):
    """Not seven (or thirty) MISSING lines and a hint: the root itself is wrong."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    for root, why in ((tmp_path / "none", "does not exist"), (afile, "is not a directory")):
        assert main(["data", "verify", name, "--root", str(root)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == f"vidtok-bench: error: {root}: {name} root {why}\n"


def test_fetch_refuses_a_file_as_root_before_downloading(server, tiny_entry, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["data", "fetch", "tiny", "--root", str(afile)]) == 2
    assert capsys.readouterr()[1] == f"vidtok-bench: error: {afile}: tiny root is not a directory\n"
    assert server.requests == []


def test_verify_uvg_sizes(tmp_path, capsys):
    for v in catalog.CATALOG["uvg"].videos:
        with open(tmp_path / v.files[-1], "wb") as f:  # sparse stand-ins; ReadySteadyGo under its alias
            f.truncate(v.frames * UVG_FRAME_BYTES - (UVG_FRAME_BYTES if v.name == "Jockey" else 0))
    assert main(["data", "verify", "uvg", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr()[0]
    assert "ok      ReadySteadyGo: ReadySetGo_1920x1080_120fps_420_8bit_YUV.yuv" in out
    assert "BAD     Jockey" in out and "(599 frames), expected 1866240000 bytes (600 frames)" in out
    assert "6 of 7 videos ok" in out and "no sha256 is recorded for this set" in out
    assert main(["data", "verify", "nope", "--root", str(tmp_path)]) == 2
    assert "unknown downloadable dataset 'nope'" in capsys.readouterr()[1]


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr()[0]
    assert "uvg" in out and "davis2017_val" in out


def test_a_damaged_archive_is_one_line_and_removed(server, tiny_entry, tmp_path, monkeypatch, capsys):
    """Sets without a published size/sha256 (DAVIS) cannot tell a cut download from a whole one before
    unpacking: a damaged zip is one line, and removed so that a rerun fetches it again."""
    server.files["/tiny.zip"] = tiny_zip()[:-40]
    monkeypatch.setitem(catalog.CATALOG, "tiny", CatalogEntry(**{**tiny_entry.__dict__, "downloads": (Download(server.url + "/tiny.zip"),)}))
    assert main(["data", "fetch", "tiny", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr()[1].splitlines()[-1]  # after the download's progress lines
    assert err.startswith(f"vidtok-bench: error: {tmp_path / 'tiny.zip'}: not a complete zip archive")
    assert "rerun" in err and not (tmp_path / "tiny.zip").exists()
    server.files["/tiny.zip"] = tiny_zip()
    assert main(["data", "fetch", "tiny", "--root", str(tmp_path)]) == 0
