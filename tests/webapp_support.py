"""Shared by the web app's tests (test_webapp_*.py): one tiny 16x16 model and its compiled engines
for the whole session, services on it, a uvicorn server in a thread on a free loopback port,
and small images."""
from __future__ import annotations

import atexit
import functools
import io
import shutil
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcgan_completion.completion.settings import CompletionSettings  # noqa: E402

SIZE = 16
DEFAULTS = CompletionSettings(n_iter=8, out_interval=4, batch_size=8)
ENGINES: OrderedDict = OrderedDict()  # compiled engines, shared by every service of the session
_warm = []


@functools.lru_cache(maxsize=None)
def model_dir() -> Path:
    """An untrained 16x16 model with tiny widths, saved once per session."""
    from model import DCGAN

    folder = Path(tempfile.mkdtemp(prefix="webapp-model-"))
    atexit.register(shutil.rmtree, folder, True)
    DCGAN(image_size=SIZE, gf_dim=4, df_dim=4, z_dim=8, seed=0).save(folder)
    return folder


@functools.lru_cache(maxsize=None)
def model():
    from model import DCGAN

    return DCGAN.from_checkpoint(model_dir())


def service(store=None, limits=None, defaults: CompletionSettings = DEFAULTS, start: bool = True, encoder=None,
            **kwargs):
    """A Service on the shared model (started unless start=False), traced once per session."""
    from dcgan_completion.serving.service import Defaults, Limits, Service

    made = Service(model(), Defaults(defaults, **kwargs), limits or Limits(), store, checkpoint=str(model_dir()),
                   engines=ENGINES, encoder=encoder)
    if start:
        made.start(warm_up=not _warm)
        _warm.append(True)
    return made


def face(seed: int, size: int = SIZE, width: int | None = None) -> np.ndarray:
    """A smooth random colour image, uint8 (size, width or size, 3)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width or size, size), Image.Resampling.BICUBIC))


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format="PNG")
    return out.getvalue()


def mask_png(height: int, width: int, box: tuple[slice, slice]) -> bytes:
    """white = keep, black = fill in box."""
    mask = np.full((height, width), 255, np.uint8)
    mask[box] = 0
    return png(mask)


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def wait_done(get, job_id: str, timeout: float = 60.0) -> dict:
    """Poll GET /api/jobs/{id} (get: a client's get) until done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = get(f"/api/jobs/{job_id}").json()
        if state["state"] in ("done", "failed"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {state}")


def running_server(app):
    """uvicorn serving app in a thread on 127.0.0.1 and a free port; yields the base URL."""
    from dcgan_completion.serving.server import in_thread

    return in_thread(app)
