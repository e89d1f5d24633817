"""``weights="imagenet"`` end to end against a local server that behaves like Google Drive.

The official BNext-T stage list is swapped for the reduced golden one, so that the "official"
checkpoint can be the golden file's state_dict written with ``torch.save`` (``module.`` prefix,
like the released files) and the converted model can be checked against the golden logits.
"""

import contextlib
import http.server
import os
import pickle
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import golden_path

from larq_poke import cli
from larq_poke.checkpoints import CheckpointError, UnsafeCheckpointError
from larq_poke.zoo import bnext, weights
from larq_poke.zoo.loading import converted_weights_path
from larq_poke.zoo.weights import WeightsError

torch = pytest.importorskip("torch", reason="torch (CPU) is a test dependency: pip install torch==2.13.0")

SMALL_STAGES = [16, 32, 64, 64, 128, 128, 128, 128]
FILE_ID = bnext._DRIVE_IDS["tiny"]
_NOT_WEIGHTS = ("input", "output", "output_fp64", "feature_out/", "feature_mean/")


@pytest.fixture(scope="module")
def golden():
    with np.load(golden_path("bnext_small.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def checkpoint_bytes(golden, tmp_path_factory):
    """The golden weights as a released checkpoint: torch.save of a module.-prefixed state_dict."""
    folder = tmp_path_factory.mktemp("released")
    state = {
        f"module.{k}": torch.from_numpy(v.copy()) for k, v in golden.items() if not k.startswith(_NOT_WEIGHTS)
    }
    for key in state:
        if key.endswith("num_batches_tracked"):
            state[key] = state[key].to(torch.int64)
    plain = folder / "bnext_tiny_checkpoint.pth.tar"
    torch.save(state, plain)
    training = folder / "model_best.pth.tar"
    torch.save({"epoch": 511, "state_dict": state, "best_top1_acc": torch.tensor(72.4)}, training)
    return plain.read_bytes(), training


@pytest.fixture(autouse=True)
def small_tiny(monkeypatch, tmp_path):
    """BNext-T with the reduced stage list, and an empty cache per test."""
    monkeypatch.setitem(bnext.STAGES, "tiny", list(SMALL_STAGES))
    monkeypatch.setenv("LARQ_POKE_CACHE", str(tmp_path / "cache"))
    # A closed port: any download attempt a test does not expect fails loudly.
    monkeypatch.setenv("LARQ_POKE_GDRIVE_URL", "http://127.0.0.1:9/uc")


class _DriveHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, body: bytes, content_type: str, headers=()):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        server = self.server
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        server.requests.append(self.path)
        if query.get("id") != FILE_ID:
            self.send_error(404)
            return
        confirmed = query.get("confirm") == "t0k3n" and (
            server.mode != "cookie" or "download_warning" in (self.headers.get("Cookie") or "")
        )
        if server.mode == "direct" or (confirmed and server.mode != "html_after_confirm"):
            self._send(server.payload, "application/octet-stream")
            return
        if server.mode == "form":
            page = (
                "<html><body><p>Google Drive can't scan this file for viruses.</p>"
                f'<form id="download-form" action="/download" method="get">'
                '<input type="submit" value="Download anyway"/>'
                f'<input type="hidden" name="id" value="{FILE_ID}">'
                '<input type="hidden" name="export" value="download">'
                '<input type="hidden" name="confirm" value="t0k3n">'
                '<input type="hidden" name="uuid" value="1234"></form></body></html>'
            )
            self._send(page.encode(), "text/html; charset=utf-8")
        elif server.mode == "cookie":
            self._send(
                b"<html>warning</html>", "text/html", [("Set-Cookie", "download_warning_123=t0k3n; Path=/")]
            )
        else:  # "no_confirm" and "html_after_confirm"
            link = '<a href="/uc?export=download&amp;confirm=t0k3n&amp;id=%s">x</a>' % FILE_ID
            self._send(
                (
                    "<html>Quota exceeded "
                    + (link if server.mode == "html_after_confirm" else "")
                    + "</html>"
                ).encode(),
                "text/html",
            )


@contextlib.contextmanager
def drive_server(payload: bytes, mode: str = "form"):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DriveHandler)
    server.payload, server.mode, server.requests = payload, mode, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    previous = os.environ.get("LARQ_POKE_GDRIVE_URL")
    os.environ["LARQ_POKE_GDRIVE_URL"] = f"http://127.0.0.1:{server.server_address[1]}/uc"
    try:
        yield server
    finally:
        if previous is None:
            os.environ.pop("LARQ_POKE_GDRIVE_URL", None)
        else:
            os.environ["LARQ_POKE_GDRIVE_URL"] = previous
        server.shutdown()
        server.server_close()


def cache_files():
    root = weights.cache_dir()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def logits(model, golden):
    return model(golden["input"].transpose(0, 2, 3, 1), training=False).numpy()


def assert_golden(model, golden):
    out = logits(model, golden)
    assert np.abs(out - golden["output"]).max() <= 1e-4
    assert list(out.argmax(axis=1)) == [706, 706]


def test_imagenet_downloads_converts_and_reuses_cache(golden, checkpoint_bytes):
    entry = weights.get("bnext-t", "imagenet")
    with drive_server(checkpoint_bytes[0], "form") as server:
        model = bnext.BNextT(weights="imagenet", input_shape=(64, 64, 3))
        assert len(server.requests) == 2  # the warning page, then the confirmed download
        assert_golden(model, golden)
        converted = converted_weights_path(entry)
        assert converted.is_file() and weights.cached_path(entry).is_file()
        assert not [f for f in cache_files() if ".part" in f]
        again = bnext.BNextT(weights="imagenet", input_shape=(64, 64, 3))
        assert len(server.requests) == 2  # served from the cache
    assert_golden(again, golden)


@pytest.mark.parametrize("mode, requests", [("cookie", 2), ("direct", 1)])
def test_other_drive_answers(checkpoint_bytes, mode, requests):
    entry = weights.get("bnext-t", "imagenet")
    with drive_server(checkpoint_bytes[0], mode) as server:
        path = weights.fetch(entry)
        assert len(server.requests) == requests
    assert path.read_bytes() == checkpoint_bytes[0]


def test_imagenet_without_top(golden, checkpoint_bytes):
    with drive_server(checkpoint_bytes[0], "direct"):
        features = bnext.BNextT(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    out = features(golden["input"].transpose(0, 2, 3, 1), training=False).numpy()
    block = golden["feature_out/7"].transpose(0, 2, 3, 1)
    alpha = golden["prelu.weight"]
    np.testing.assert_allclose(out, np.maximum(block, 0) + alpha * np.minimum(block, 0), rtol=1e-4, atol=1e-4)


def _malicious(marker: Path) -> bytes:
    import io
    import zipfile

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"module.fc.weight": Exploit()}, protocol=2))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["truncated", "malicious", "other_variant"])
def test_bad_download_caches_nothing(checkpoint_bytes, tmp_path, kind):
    marker = tmp_path / "pwned"
    if kind == "truncated":
        payload, error = checkpoint_bytes[0][: len(checkpoint_bytes[0]) // 3], CheckpointError
    elif kind == "malicious":
        payload, error = _malicious(marker), UnsafeCheckpointError
    else:
        buffer = tmp_path / "other.pth"
        torch.save({"module.feature.0.conv1.weight": torch.zeros(8, 3, 3, 3)}, buffer)
        payload, error = buffer.read_bytes(), ValueError
    with drive_server(payload, "form") as server:
        with pytest.raises(error):
            bnext.BNextT(weights="imagenet", input_shape=(64, 64, 3))
        assert len(server.requests) == 2
    assert cache_files() == []
    assert not marker.exists()


@pytest.mark.parametrize(
    "mode, message",
    [("no_confirm", "no download confirmation"), ("html_after_confirm", "after the confirmation")],
)
def test_drive_refusal_explains_manual_import(checkpoint_bytes, mode, message):
    with drive_server(checkpoint_bytes[0], mode):
        with pytest.raises(WeightsError, match=message) as info:
            bnext.BNextT(weights="imagenet", input_shape=(64, 64, 3))
    assert "larq-poke weights import" in str(info.value)
    assert FILE_ID in str(info.value)
    assert cache_files() == []


def test_offline_error_names_the_manual_route():
    with pytest.raises(WeightsError, match="larq-poke weights import bnext-t"):
        bnext.BNextT(weights="imagenet", input_shape=(64, 64, 3))


def test_cli_import_preseeds_the_cache(golden, checkpoint_bytes, tmp_path, capsys):
    _, training = checkpoint_bytes
    assert cli.main(["weights", "import", "bnext-t", str(training)]) == 0
    assert "bnext-t/imagenet" in capsys.readouterr().out
    model = bnext.BNextT(weights="imagenet", input_shape=(64, 64, 3))  # no server: must not download
    assert_golden(model, golden)
    assert cli.main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    rows = {line.split()[0]: line for line in listing.splitlines() if line.startswith("bnext-")}
    assert set(rows) >= {"bnext-t", "bnext-s", "bnext-m", "bnext-l"}
    assert " yes " in rows["bnext-t"] and " no " in rows["bnext-s"]
    assert f"gdrive://{FILE_ID}" in rows["bnext-t"]


def test_cli_import_rejects_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert cli.main(["weights", "import", "bnext-t", str(bad)]) == 2
    assert "error" in capsys.readouterr().err
    assert cache_files() == []
    assert cli.main(["weights", "import", "bnext-x", str(bad)]) == 2
    assert "No weights registered for 'bnext-x'" in capsys.readouterr().err


def test_weights_path_accepts_checkpoint_and_keras_file(golden, checkpoint_bytes, tmp_path):
    _, training = checkpoint_bytes
    model = bnext.BNext(SMALL_STAGES, input_shape=(64, 64, 3), weights=training)
    assert_golden(model, golden)
    keras_file = tmp_path / "converted.h5"
    model.save_weights(str(keras_file))
    assert_golden(bnext.BNext(SMALL_STAGES, input_shape=(64, 64, 3), weights=keras_file), golden)
    with pytest.raises(ValueError, match="unknown weights file format"):
        (tmp_path / "x.bin").write_bytes(b"\x00" * 16)
        bnext.BNext(SMALL_STAGES, input_shape=(64, 64, 3), weights=tmp_path / "x.bin")
