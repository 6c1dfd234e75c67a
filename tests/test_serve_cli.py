"""serve.py as a user runs it: a folder without a checkpoint and a port in use are one-line errors
(before anything binds or loads), and a running server answers, then stops cleanly on SIGTERM."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from webapp_support import ROOT, model_dir

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "serve.py"), *args], capture_output=True, text=True,
                          env=ENV, timeout=300)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_folder_and_busy_port_are_one_line_errors(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    with ThreadPoolExecutor(2) as pool:
        missing = pool.submit(run, "--checkpointDir", str(tmp_path / "none"), "--port", str(port))
        in_use = pool.submit(run, "--checkpointDir", str(model_dir()), "--port", str(port))
        missing, in_use = missing.result(), in_use.result()
    busy.close()
    assert "does not exist" in one_line_error(missing)
    assert f"127.0.0.1:{port} is in use" in one_line_error(in_use)


def test_serves_then_stops_cleanly_on_sigterm():
    process = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), "--checkpointDir", str(model_dir()),
                                "--port", "0", "--nIter", "2", "--outInterval", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        url = None
        deadline = time.monotonic() + 240
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, f"serve.py ended early: {process.stderr.read()}"
            if line.startswith("Serving"):
                url = line.split(" at ")[1].split()[0]
        assert url and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/model", timeout=30) as response:
            assert b'"image_size":16' in response.read()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Stopped." in out and "Traceback" not in err
