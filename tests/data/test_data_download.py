"""``ganforge.data.download`` against a loopback HTTP server that honours Range requests."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ganforge.data import download as dl
from ganforge.data import load
from ganforge.data.idx import write_idx
from ganforge.errors import ConfigError, GanforgeError

MnistArrays = dict[str, np.ndarray]


class _Server:
    """Serves ``files`` by name; records (name, Range header) of each request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                wanted = self.headers.get("Range")
                server.requests.append((name, wanted))
                if name not in server.files:
                    self.send_error(404)
                    return
                body, start = server.files[name], 0
                match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
                if match and server.honour_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def served_mnist(
    tmp_path: Path, server: _Server, mnist_arrays: MnistArrays, monkeypatch: pytest.MonkeyPatch
) -> dict[str, bytes]:
    """Put tiny gzipped idx files on the server and make them the expected MNIST files."""
    names = {
        "train-images-idx3-ubyte.gz": "x_train",
        "train-labels-idx1-ubyte.gz": "y_train",
        "t10k-images-idx3-ubyte.gz": "x_test",
        "t10k-labels-idx1-ubyte.gz": "y_test",
    }
    source = tmp_path / "served"
    source.mkdir()
    for filename, key in names.items():
        write_idx(source / filename, mnist_arrays[key])
        server.files[filename] = (source / filename).read_bytes()
    md5s = {name: hashlib.md5(body).hexdigest() for name, body in server.files.items()}
    monkeypatch.setitem(dl.MD5S, "mnist", md5s)
    return server.files


def test_download_then_load_finds_it_in_the_cache(
    server: _Server, served_mnist: dict[str, bytes], isolated_data_env: Path
) -> None:
    folder = dl.download("MNIST", mirror=server.url, progress=True)
    assert folder == isolated_data_env / ".cache" / "ganforge" / "mnist"
    assert {p.name for p in folder.iterdir()} == set(served_mnist)
    assert all(rng is None for _, rng in server.requests)
    data = load("mnist")
    assert data.source == str(folder) and len(data) == 12 and len(load("mnist", "test")) == 5
    server.requests.clear()
    dl.download("mnist", mirror=server.url, progress=False)  # complete files are kept
    assert server.requests == []


@pytest.mark.parametrize("honour_range", [True, False])
def test_resume_from_a_partial_file(
    tmp_path: Path, server: _Server, served_mnist: dict[str, bytes], honour_range: bool
) -> None:
    server.honour_range = honour_range
    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    body = served_mnist["train-images-idx3-ubyte.gz"]
    (folder / "train-images-idx3-ubyte.gz.part").write_bytes(body[:100])
    dl.download("mnist", cache_dir=tmp_path / "cache", mirror=server.url.rstrip("/"), progress=False)
    assert ("train-images-idx3-ubyte.gz", "bytes=100-") in server.requests
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == body
    assert not list(folder.glob("*.part"))
    assert len(load("mnist", data_dir=tmp_path / "cache")) == 12


def test_complete_partial_file_gets_416_and_is_kept(
    tmp_path: Path, server: _Server, served_mnist: dict[str, bytes]
) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    body = served_mnist["t10k-labels-idx1-ubyte.gz"]
    (folder / "t10k-labels-idx1-ubyte.gz.part").write_bytes(body)
    dl.download("mnist", cache_dir=tmp_path, mirror=server.url, progress=False)
    assert ("t10k-labels-idx1-ubyte.gz", f"bytes={len(body)}-") in server.requests
    assert (folder / "t10k-labels-idx1-ubyte.gz").read_bytes() == body


def test_checksum_mismatch_deletes_the_file(
    tmp_path: Path, server: _Server, served_mnist: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(dl.MD5S["mnist"], "train-labels-idx1-ubyte.gz", "0" * 32)
    with pytest.raises(GanforgeError, match=r"checksum mismatch for .*train-labels-idx1-ubyte\.gz.*deleted"):
        dl.download("mnist", cache_dir=tmp_path, mirror=server.url, progress=False)
    assert not (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").exists()
    assert not (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz.part").exists()


def test_http_error_and_unknown_name(tmp_path: Path, server: _Server, served_mnist: dict[str, bytes]) -> None:
    del server.files["t10k-images-idx3-ubyte.gz"]
    with pytest.raises(GanforgeError, match=r"could not download .*t10k-images-idx3-ubyte\.gz: HTTP 404"):
        dl.download("mnist", cache_dir=tmp_path, mirror=server.url, progress=False)
    with pytest.raises(ConfigError, match="downloadable datasets are fashion_mnist, mnist"):
        dl.download("cifar10", cache_dir=tmp_path)


def test_command_line(
    tmp_path: Path,
    server: _Server,
    served_mnist: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    main: Callable[[list[str]], int] = dl.main
    assert main(["mnist", "--cache-dir", str(tmp_path), "--mirror", server.url, "--quiet"]) == 0
    assert f"saved to {tmp_path / 'mnist'}" in capsys.readouterr().out
    assert (
        main(["mnist", "--cache-dir", str(tmp_path / "x"), "--mirror", "http://127.0.0.1:1/", "--quiet"]) == 1
    )
    assert "error: could not download" in capsys.readouterr().err
