"""Run the web app: check the model folder and the port (one-line errors, before anything
binds or loads), load the model once, start the worker, serve with uvicorn, and stop cleanly on
Ctrl-C or SIGTERM: the waiting and running jobs fail at once with "the server is stopping", so
that every open event stream sends that and ends before uvicorn closes the connections, and the
running batch stops after its compiled chunk.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn

import utils
from dcgan_completion import auto_precision, distribute, encoder
from dcgan_completion.completion.settings import default_iterations
from dcgan_completion.networks.storage import read_config, require_checkpoint
from dcgan_completion.serving.app import create_app
from dcgan_completion.serving.jobs import JobStore, bucket
from dcgan_completion.serving.security import Access, is_loopback, new_token
from dcgan_completion.serving.service import Defaults, Limits, Service
from model import DCGAN


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now, so that a port in use is one line, not a traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise utils.UserError(f"--host {host}: {error.strerror or error}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise utils.UserError(f"{host}:{port} is in use by another program; choose another --port")
        if error.errno in (errno.EACCES, errno.EPERM):
            raise utils.UserError(f"{host}:{port}: permission denied (ports below 1024 need root); choose another --port")
        raise utils.UserError(f"cannot listen on {host}:{port}: {error.strerror or error}")
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}/"


def stopping_server(config, on_stop):
    """A uvicorn.Server that, at the first Ctrl-C or SIGTERM, runs on_stop (in a thread: a signal
    handler must not take the store's lock) as its own graceful shutdown begins."""

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if not self.should_exit:
                threading.Thread(target=on_stop, name="stopping", daemon=True).start()
            super().handle_exit(sig, frame)

    return Server(config)


def access_for(host: str, allow_hosts=(), allow_origins=(), token: str | None = None) -> Access:
    """Who may use a server on `host`: beyond loopback a token is required (a new one unless given)."""
    if token is None and not is_loopback(host):
        token = new_token()
    return Access(host=host, allow_hosts=tuple(allow_hosts), allow_origins=tuple(allow_origins), token=token)


def serve(checkpoint_dir: str, defaults: Defaults, host: str = "127.0.0.1", port: int = 8080,
          mixed_precision: str = "auto", limits: Limits = Limits(), store: JobStore | None = None,
          xla: bool = False, access: Access | None = None) -> int:
    """Load the model in checkpoint_dir and serve the page and the API until Ctrl-C or SIGTERM."""
    require_checkpoint(checkpoint_dir)
    sock = bind(host, port)
    try:
        return _serve(sock, checkpoint_dir, defaults, mixed_precision, limits, store, xla,
                      access or access_for(host))
    finally:
        sock.close()


def start_line(model_size: int, checkpoint_dir: str, sock: socket.socket, access: Access) -> str:
    url = url_of(sock)
    if access.token is None:
        return (f"Serving the {model_size}x{model_size} model of {checkpoint_dir} at {url} "
                f"(the API's description at {url}docs); Ctrl-C to stop")
    why = "it listens beyond loopback" if not is_loopback(access.host) else "--token was given"
    return (f"Serving the {model_size}x{model_size} model of {checkpoint_dir} at {url}?token={access.token} "
            f"(a token is required: {why}; open this address, or send 'Authorization: Bearer TOKEN'); "
            f"Ctrl-C to stop")


def _serve(sock, checkpoint_dir, defaults, mixed_precision, limits, store, xla, access) -> int:
    distribute.start("default", xla, mixed_precision)  # one device
    # auto measures at every padded batch the worker runs (1, 2, 4, ... up to --batchSize), alike.
    size = defaults.settings.batch_size
    model, precision, why = auto_precision.completion_precision(
        mixed_precision, lambda p, phases: DCGAN.from_checkpoint(checkpoint_dir, compute_dtype=p, phases=phases),
        read_config(checkpoint_dir), sorted({bucket(n, size) for n in range(1, size + 1)}), defaults.settings)
    print(distribute.precision_line(precision, why), flush=True)
    if defaults.mask_type == "lowres" and model.image_size % 8:
        raise utils.UserError(f"--maskType lowres needs an image size divisible by 8, not {model.image_size}")
    start, start_note = encoder.for_completion(checkpoint_dir, model, defaults.settings.z_init)
    print(start_note, flush=True)
    if not defaults.iterations_given:
        settings = dataclasses.replace(defaults.settings, n_iter=default_iterations(start is not None))
        defaults = dataclasses.replace(defaults, settings=settings)
    service = Service(model, defaults, limits, store, checkpoint=str(Path(checkpoint_dir)),
                      precision="float32" if precision in (None, "off") else precision,
                      log=lambda text: print(text, file=sys.stderr, flush=True), encoder=start)
    app = create_app(service, access)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=3, server_header=False)
    server = stopping_server(config, service.begin_stop)
    stopped = []
    # uvicorn catches SIGINT and SIGTERM while it serves and re-sends them to these handlers when it
    # is done: they note the signal, so that the process ends cleanly (not by KeyboardInterrupt).
    previous = {sig: signal.signal(sig, lambda number, _frame: stopped.append(number))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    print("Tracing the completion's compiled functions...", flush=True)
    service.start(warm_up=True)
    print(start_line(model.image_size, checkpoint_dir, sock, access), flush=True)
    try:
        if not stopped:  # a signal during the tracing: stop without serving
            server.run(sockets=[sock])
    finally:
        service.stop(timeout=10.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Stopped.", flush=True)
    return 0


@contextlib.contextmanager
def in_thread(app, host: str = "127.0.0.1", port: int = 0):
    """Serve app with uvicorn in a thread (a free port by default); yields the base URL. For the
    tests and bench/bench_serve.py; stops when the block ends."""

    sock = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield url_of(sock).rstrip("/")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
