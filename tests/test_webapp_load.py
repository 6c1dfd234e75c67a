"""The web app under load, on loopback only: 32 clients submit at once (a quarter with bad inputs);
every good job finishes with its own result (its own image outside its own hole), none is lost or
mixed up, bad ones get one-line errors, jobs share batches, the store and the process's memory
stay bounded, and the server answers a new request afterwards."""
from __future__ import annotations

import threading
import time

import httpx
import numpy as np

from webapp_support import SIZE, decode, face, mask_png, png, running_server, service

CLIENTS = 32
DEADLINE_S = 240


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def bad_request(index: int) -> tuple[dict, dict, int]:
    image = png(face(index))
    return [({"image": ("x.png", b"GIF89a broken", "image/png")}, {}, 400),
            ({"image": ("x.png", image), "mask": ("m.png", png(np.full((SIZE, SIZE), 255, np.uint8)))}, {}, 422),
            ({"image": ("x.png", image), "mask": ("m.png", mask_png(SIZE + 3, SIZE, (slice(2, 6), slice(2, 6))))},
             {}, 422),
            ({"image": ("x.png", image)}, {"n_iter": "-4"}, 422)][index % 4]


def test_32_clients_at_once():
    from dcgan_completion.serving.app import create_app
    from dcgan_completion.serving.jobs import JobStore

    store = JobStore(max_jobs=48, max_queue=48, max_bytes=32 << 20)
    made = service(store=store)
    outcomes: dict[int, object] = {}
    start = threading.Barrier(CLIENTS)

    def client(index: int, base: str) -> None:
        try:
            with httpx.Client(base_url=base, timeout=60) as http:
                if index % 4 == 3:
                    files, data, status = bad_request(index // 4)
                    start.wait(30)
                    response = http.post("/api/jobs", files=files, data=data)
                    body = response.json()
                    outcomes[index] = ("bad", response.status_code == status and list(body) == ["error"])
                    return
                height, width = (SIZE, SIZE) if index % 2 else (20 + index % 5, 24)
                image = face(1000 + index, size=height, width=width)
                top, left = index % 6, (index * 3) % 8
                box = (slice(top, top + 6), slice(left, left + 7))
                start.wait(30)
                response = http.post("/api/jobs", files={"image": ("f.png", png(image)),
                                                         "mask": ("m.png", mask_png(height, width, box))},
                                     data={"seed": str(index)})
                assert response.status_code == 202, response.text
                job_id = response.json()["id"]
                deadline = time.monotonic() + DEADLINE_S
                while (state := http.get(f"/api/jobs/{job_id}").json())["state"] not in ("done", "failed"):
                    assert time.monotonic() < deadline, f"client {index}: not done"
                    time.sleep(0.05)
                assert state["state"] == "done" and state["seed"] == index, state
                result = decode(http.get(f"/api/jobs/{job_id}/result.png").content)
                keep = np.ones((height, width), bool)
                keep[box] = False
                outcomes[index] = ("good", result.shape == image.shape and bool((result[keep] == image[keep]).all()),
                                   state["batch"]["jobs"])
        except Exception as error:  # noqa: BLE001 - reported below, per client
            outcomes[index] = ("error", repr(error))

    with running_server(create_app(made)) as base:
        before = rss_bytes()
        threads = [threading.Thread(target=client, args=(i, base), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_S + 30)
        grown = rss_bytes() - before
        stats = store.stats()
        # Still serving: the model's description and a new job.
        with httpx.Client(base_url=base, timeout=60) as http:
            assert http.get("/api/model").status_code == 200
            job_id = http.post("/api/jobs", files={"image": ("f.png", png(face(7)))}, data={"seed": "1"}).json()["id"]
            deadline = time.monotonic() + 60
            while http.get(f"/api/jobs/{job_id}").json()["state"] != "done":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    made.stop()

    errors = {i: o for i, o in outcomes.items() if o[0] == "error"}
    assert errors == {} and len(outcomes) == CLIENTS
    good = [o for o in outcomes.values() if o[0] == "good"]
    assert len(good) == 24 and all(o[1] for o in good)               # each its own image, outside its own hole
    assert all(o[1] for o in outcomes.values() if o[0] == "bad")      # one-line JSON errors, right statuses
    assert max(o[2] for o in good) > 1                                # jobs shared batches
    assert stats["jobs"] <= store.max_jobs and stats["bytes"] <= store.max_bytes
    assert stats["completed"] >= 24 and stats["waiting"] == 0
    assert grown < 300 << 20, f"the process grew by {grown / 2**20:.0f} MiB"
