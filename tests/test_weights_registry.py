"""Weights registry downloads against a local HTTP server: caching, sha256, atomicity, errors."""

import hashlib
import http.server
import socket
import threading

import pytest

from larq_poke.zoo import weights

PAYLOAD = b"larq-poke test weights " * 1000


class _Handler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802
        type(self).hits += 1
        if self.path != "/w.bin":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Handler.hits = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LARQ_POKE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


def entry(url, sha256=PAYLOAD_SHA256):
    return weights.WeightsEntry(model="test-model", variant="imagenet", url=url, file_name="w.bin",
                                format="keras_h5", sha256=sha256, source="test", license="MIT")


def test_download_verify_and_reuse_cache(server, cache):
    e = entry(f"{server}/w.bin")
    path = weights.fetch(e)
    assert path.read_bytes() == PAYLOAD
    assert path == cache / "test-model" / "imagenet" / "w.bin"
    assert weights.fetch(e) == path
    assert _Handler.hits == 1  # served from the cache the second time


def test_corrupted_cache_is_downloaded_again(server):
    e = entry(f"{server}/w.bin")
    path = weights.fetch(e)
    path.write_bytes(b"truncated")
    assert weights.fetch(e).read_bytes() == PAYLOAD
    assert _Handler.hits == 2


def test_sha256_mismatch_leaves_nothing(server, cache):
    e = entry(f"{server}/w.bin", sha256="0" * 64)
    with pytest.raises(weights.WeightsError, match="sha256 mismatch"):
        weights.fetch(e)
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == []


def test_offline_error_names_url_and_manual_import():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed port: connection refused
    e = entry(f"http://127.0.0.1:{port}/w.bin")
    with pytest.raises(weights.WeightsError) as info:
        weights.fetch(e, timeout=5)
    assert f"127.0.0.1:{port}/w.bin" in str(info.value)
    assert "larq-poke weights import test-model" in str(info.value)


def test_http_error(server):
    with pytest.raises(weights.WeightsError, match="404"):
        weights.fetch(entry(f"{server}/missing.bin"))


def test_install_file_checks_hash(tmp_path):
    good = tmp_path / "good.bin"
    good.write_bytes(PAYLOAD)
    e = entry("http://127.0.0.1:9/unused")
    assert weights.install_file(e, good).read_bytes() == PAYLOAD
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"other")
    with pytest.raises(weights.WeightsError, match="sha256 mismatch"):
        weights.install_file(e, bad)


def test_registry_lookup():
    e = weights.register(entry("http://127.0.0.1:9/w.bin"))
    assert weights.get("test-model", "imagenet") is e
    assert e in weights.list_weights("test-model")
    with pytest.raises(KeyError, match="Known"):
        weights.get("test-model", "cifar")
