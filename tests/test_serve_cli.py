"""serve.py as a user runs it: a folder without a checkpoint and a port in use are one-line errors
(before anything binds or loads); on every interface it needs its token and refuses strangers; and
SIGTERM with a job running and its event stream open ends the stream with `failed` and the process
within 5 s, cleanly."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
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


def request(url: str, method: str = "GET", data: bytes | None = None, **headers) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[bytes, str]:
    body = b""
    for name, value in fields.items():
        if isinstance(value, tuple):
            head = f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\nContent-Type: image/png'
            data = value[1]
        else:
            head, data = f'Content-Disposition: form-data; name="{name}"', value.encode()
        body += f"--b0undary\r\n{head}\r\n\r\n".encode() + data + b"\r\n"
    return body + b"--b0undary--\r\n", "multipart/form-data; boundary=b0undary"


def follow(url: str, token: str, events: list, opened: threading.Event) -> None:
    """Read a job's event stream to its end, as the page's EventSource does."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=120) as stream:
        opened.set()
        for line in stream:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))


def test_beyond_loopback_needs_its_token_and_sigterm_ends_streams_and_exits_in_5_s():
    """On every interface: a new token is printed with the address, and nothing works without it; a
    foreign Host and another site's POST are refused; then SIGTERM, with a job running and its event
    stream open: the stream's last event is failed ("the server is stopping"), the process exits 0
    within 5 s, and it prints nothing but its own lines."""
    process = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), "--checkpointDir", str(model_dir()),
                                "--host", "0.0.0.0", "--port", "0", "--nIter", "2", "--outInterval", "1",
                                "--mixed_precision", "off"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        lines = []
        deadline = time.monotonic() + 240
        while not (lines and lines[-1].startswith("Serving")) and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, f"serve.py ended early: {process.stderr.read()}"
            lines.append(line)
        served = lines[-1]
        assert "a token is required: it listens beyond loopback" in served, served
        address = served.split(" at ")[1].split()[0]
        base, token = address.split("?token=")
        assert base.startswith("http://127.0.0.1:") and len(token) >= 24

        status, body = request(base + "api/model")
        assert status == 401 and list(json.loads(body)) == ["error"]
        assert request(base, Host="evil.example.com")[0] == 421
        auth = {"Authorization": f"Bearer {token}"}
        status, body = request(base + "api/model", **auth)
        assert status == 200 and json.loads(body)["image_size"] == 16
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # keeps the cookie
        with browser.open(address, timeout=60) as page:  # the printed address opens the page
            assert b"Painted = fill" in page.read() and page.url == base
        image = (ROOT / "docs" / "images" / "webapp.png").read_bytes()
        form, kind = multipart({"image": ("face.png", image), "n_iter": "10000", "out_interval": "20"})
        assert request(base + "api/jobs", "POST", form, **{"Content-Type": kind, "Origin": "http://evil.example",
                                                           **auth})[0] == 403
        large = b"\0" * (8 << 20)  # a refused body still being sent gets its refusal, not a broken pipe
        assert request(base + "api/jobs", "POST", large, Origin="http://evil.example", **auth)[0] == 403
        assert request(base + "api/jobs", "POST", large)[0] == 401
        bad = (b'--x\r\nContent-Disposition: form-data; name="image"; filename="a"\r\nBad"Header: 1\r\n\r\n'
               b'abc\r\n--x--\r\n')
        assert request(base + "api/jobs", "POST", bad, **{"Content-Type": "multipart/form-data; boundary=x",
                                                          **auth})[0] == 400
        status, body = request(base + "api/jobs", "POST", form, **{"Content-Type": kind, **auth})
        assert status == 202, body
        job = json.loads(body)["id"]

        events, opened = [], threading.Event()
        reader = threading.Thread(target=follow, args=(f"{base}api/jobs/{job}/events", token, events, opened),
                                  daemon=True)
        reader.start()
        assert opened.wait(60)
        deadline = time.monotonic() + 120
        while not any(event["state"] == "running" and event["iteration"] > 0 for event in events):
            assert time.monotonic() < deadline and reader.is_alive(), events
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = process.communicate(timeout=60)
        took = time.monotonic() - signalled
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert took < 5.0, f"{took:.1f} s from SIGTERM to exit"
    assert not reader.is_alive() and events[-1]["state"] == "failed", events[-1:]
    assert events[-1]["error"] == "the server is stopping" and events[-1]["iteration"] < 10000
    assert out.splitlines()[-1] == "Stopped." and len(out.splitlines()) == 1
    assert err.strip() == "", err  # no traceback, no uvicorn or python-multipart lines
