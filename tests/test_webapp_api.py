"""The web app's REST API with FastAPI's TestClient on a tiny 16x16 model: every endpoint, a job's
result against complete.py's for the same image, mask and seed, batching (a seeded job's result
does not depend on its batch mates; jobs of other settings run apart; small padded batches),
cancelling (a waiting job, a running one whose batch mates' results do not change, a batch of
cancelled jobs that stops), every bad input answered with one JSON line in plain words while the
server keeps serving (images and masks that declare too many pixels: 413), and the store's bounds."""
from __future__ import annotations

import io
import json
import logging
import re
import struct
import time
import warnings
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from webapp_support import SIZE, decode, face, mask_png, model, png, service, wait_done

warnings.filterwarnings("ignore", message=".*httpx.*")
from fastapi.testclient import TestClient  # noqa: E402

from dcgan_completion.completion import masks as masking  # noqa: E402
from dcgan_completion.serving.app import create_app  # noqa: E402
from dcgan_completion.serving.jobs import Job, JobStore, bucket  # noqa: E402
from dcgan_completion.serving.security import Access  # noqa: E402
from dcgan_completion.serving.service import Limits  # noqa: E402

BOX = (slice(3, 10), slice(5, 12))
STATIC = Path(__file__).resolve().parents[1] / "dcgan_completion" / "serving" / "static"


def client_of(made, **access) -> TestClient:
    """A client of the app on `made`, as the page at http://127.0.0.1 calls it."""
    return TestClient(create_app(made, Access(**access)), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def served():
    made = service()
    yield made, client_of(made)
    made.stop()


@pytest.fixture(scope="module")
def client(served):
    return served[1]


def post(client, image: bytes, mask: bytes | None = None, **data):
    files = {"image": ("face.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return client.post("/api/jobs", files=files, data={k: str(v) for k, v in data.items()})


def done(client, response) -> dict:
    assert response.status_code == 202, response.text
    state = wait_done(client.get, response.json()["id"])
    assert state["state"] == "done", state
    return state


def is_one_line_error(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert body["error"] and "\n" not in body["error"]
    return body["error"]


def test_model_metadata(client):
    info = client.get("/api/model").json()
    assert {key: info[key] for key in ("image_size", "z_dim", "gf_dim", "df_dim", "layout", "channels")} == \
        {"image_size": SIZE, "z_dim": 8, "gf_dim": 4, "df_dim": 4, "layout": "article", "channels": 3}
    assert info["precision"] == "float32" and info["device"].startswith(("CPU", "/device:GPU"))
    assert info["defaults"]["n_iter"] == 8 and info["defaults"]["mask_type"] == "center"
    assert set(info["mask_types"]) == set(masking.MASK_TYPES) - {"full"}


def test_page_docs_and_openapi_work_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "Painted = fill" in page.text
    for name in ("app.js", "style.css", "docs.js"):
        assert client.get(f"/static/{name}").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/docs.js" in docs.text
    for path in STATIC.iterdir():  # nothing from another host: no absolute URL in any asset
        text = path.read_text()
        assert not re.search(r"(src|href)=[\"']https?:|url\(\s*[\"']?https?:|fetch\([\"'`]https?:|//cdn\.", text), path
    spec = client.get("/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/result.png",
            "/api/jobs/{job_id}/fill.png", "/api/jobs/{job_id}/completion.gif", "/api/model",
            "/api/masks/{mask_type}"} <= set(spec["paths"])


def test_result_equals_complete_py(client, tmp_path, capsys):
    """Same image, mask and --seed: complete.py's final/ and fill/ images and GIF frames."""
    import complete
    from webapp_support import model_dir

    image = face(1)
    Image.fromarray(image).save(tmp_path / "face.png")
    (tmp_path / "mask.png").write_bytes(mask_png(SIZE, SIZE, BOX))
    assert complete.main(["--checkpointDir", str(model_dir()), "--outDir", str(tmp_path / "out"), "--mask",
                          str(tmp_path / "mask.png"), "--seed", "5", "--nIter", "8", "--outInterval", "4", "--batchSize", "1",
                          "--mixed_precision", "off", str(tmp_path / "face.png")]) == 0
    capsys.readouterr()
    state = done(client, post(client, png(image), mask_png(SIZE, SIZE, BOX), seed=5, n_iter=8, out_interval=4))
    assert state["seed"] == 5 and state["iteration"] == 8 and state["faces"] == 1
    base = f"/api/jobs/{state['id']}"
    result = decode(client.get(f"{base}/result.png").content).astype(int)
    expected = np.asarray(Image.open(tmp_path / "out" / "final" / "face.png")).astype(int)
    assert result.shape == expected.shape == (SIZE, SIZE, 3)
    assert np.abs(result - expected).max() <= 1
    fill = decode(client.get(f"{base}/fill.png").content).astype(int)
    assert np.abs(fill - np.asarray(Image.open(tmp_path / "out" / "fill" / "face.png"))).max() <= 1
    gif = iio.imread(client.get(f"{base}/completion.gif").content, index=None)
    reference = iio.imread(tmp_path / "out" / "completion.gif", index=None)
    assert gif.shape == reference.shape  # iterations 0, 4 and 8 (a repeated frame is merged)
    assert np.abs(gif.astype(int) - reference).max() <= 1
    keep = np.ones((SIZE, SIZE), bool)
    keep[BOX] = False
    assert (result[keep] == image[keep]).all()


def test_progress_streams_as_server_sent_events(client):
    # Long enough (a few tenths of a second) that the stream opens while the job still runs.
    response = post(client, png(face(2)), mask_type="center", n_iter=600, out_interval=20, seed=1)
    job_id = response.json()["id"]
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["state"] == "done" and events[-1]["results"]["result.png"].endswith("/result.png")
    iterations = [event["iteration"] for event in events]
    assert iterations == sorted(iterations) and iterations[-1] == 600
    frames = [event["frame"] for event in events if "frame" in event]
    assert frames and all(frame.startswith("data:image/png;base64,") for frame in frames)
    running = [event for event in events if event["state"] == "running" and event["loss"] is not None]
    assert running and all(np.isfinite(event["loss"]) for event in running)


def test_any_size_input_keeps_every_pixel_outside_the_hole(client):
    image = face(3, size=30, width=44)
    box = (slice(8, 20), slice(10, 30))
    state = done(client, post(client, png(image), mask_png(30, 44, box), seed=2))
    result = decode(client.get(f"/api/jobs/{state['id']}/result.png").content)
    assert result.shape == (30, 44, 3) and (state["width"], state["height"]) == (44, 30)
    keep = np.ones((30, 44), bool)
    keep[box] = False
    assert (result[keep] == image[keep]).all()
    assert (result[~keep] != image[~keep]).any()


def test_builtin_masks_are_maskings(client):
    response = client.get("/api/masks/center", params={"width": 32, "height": 32})
    mask = decode(response.content)
    expected = masking.make_mask("center", SIZE)[:, :, 0].repeat(2, 0).repeat(2, 1) * 255
    assert response.headers["content-type"] == "image/png" and (mask == expected).all()
    random = decode(client.get("/api/masks/random", params={"width": SIZE, "height": SIZE, "seed": 9}).content)
    assert (random == masking.make_mask("random", SIZE, rng=np.random.default_rng(9))[:, :, 0] * 255).all()
    # A job with mask_type random and seed 9 fills exactly the previewed hole.
    image = face(4)
    state = done(client, post(client, png(image), mask_type="random", seed=9))
    result = decode(client.get(f"/api/jobs/{state['id']}/result.png").content)
    assert (result[random == 255] == image[random == 255]).all()
    is_one_line_error(client.get("/api/masks/bogus", params={"width": 8, "height": 8}), 422)


def test_whole_photo_fills_through_its_face(client):
    from matplotlib import cbook

    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
    box = (slice(175, 210), slice(200, 250))  # over an eye
    state = done(client, post(client, photo, mask_png(600, 512, box), photo="true", seed=3))
    assert state["kind"] == "photo" and state["faces"] == 1 and (state["width"], state["height"]) == (512, 600)
    result = decode(client.get(f"/api/jobs/{state['id']}/result.png").content)
    original = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    keep = np.ones((600, 512), bool)
    keep[box] = False
    assert result.shape == original.shape and (result[keep] == original[keep]).all()
    assert state["notes"] == []
    # A hole from the brows up to the hat's brim reaches above the face's aligned square: Telea fills that part.
    brows = (slice(142, 205), slice(200, 330))
    state = done(client, post(client, photo, mask_png(600, 512, brows), photo="true", seed=3))
    assert len(state["notes"]) == 1 and re.fullmatch(
        r"[\d,]+ of 8,190 hole pixels lie outside the face's aligned square and were filled with OpenCV's Telea "
        r"inpainting", state["notes"][0]), state["notes"]
    result = decode(client.get(f"/api/jobs/{state['id']}/result.png").content)
    keep = np.ones((600, 512), bool)
    keep[brows] = False
    assert (result[keep] == original[keep]).all()
    no_face = png(np.full((120, 160, 3), 128, np.uint8))
    error = is_one_line_error(post(client, no_face, mask_png(120, 160, (slice(10, 50), slice(10, 50))),
                                   photo="true"), 422)
    assert "no face" in error


def test_a_job_that_does_not_say_photo_is_decided_by_the_image(client):
    """Without `photo`, a whole photo (Grace Hopper, 512x600) is filled through its face, with the same
    pixels as photo=true; an image of the model's size is an aligned face, as photo=false; each job's
    first note says which and why, and POST /api/inspect gives the same decision before any job."""
    from matplotlib import cbook

    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
    box = (slice(175, 210), slice(200, 250))
    decided = done(client, post(client, photo, mask_png(600, 512, box), seed=3))
    forced = done(client, post(client, photo, mask_png(600, 512, box), photo="true", seed=3))
    assert decided["kind"] == "photo" and decided["faces"] == 1
    assert decided["notes"][0] == ("completed as a whole photo: a face was found in the 512x600 image, "
                                   "which is not square")
    results = [decode(client.get(f"/api/jobs/{state['id']}/result.png").content) for state in (decided, forced)]
    assert (results[0] == results[1]).all()
    inspected = client.post("/api/inspect", files={"image": ("photo.jpg", photo, "image/jpeg")}).json()
    assert inspected["photo"] is True and (inspected["width"], inspected["height"]) == (512, 600)
    assert decided["notes"][0] == inspected["why"]

    image = png(face(6))
    decided = done(client, post(client, image, mask_png(SIZE, SIZE, BOX), seed=4))
    forced = done(client, post(client, image, mask_png(SIZE, SIZE, BOX), photo="false", seed=4))
    assert decided["kind"] == "face" and forced["notes"] == []
    assert decided["notes"] == [f"completed as an aligned face: the image is the model's {SIZE}x{SIZE}"]
    results = [decode(client.get(f"/api/jobs/{state['id']}/result.png").content) for state in (decided, forced)]
    assert (results[0] == results[1]).all()
    assert client.post("/api/inspect", files={"image": ("face.png", image, "image/png")}).json()["photo"] is False
    is_one_line_error(client.post("/api/inspect", files={"image": ("x.png", b"not an image", "image/png")}), 400)


def test_batch_mates_do_not_change_a_seeded_result():
    """Jobs waiting together run as one padded batch (3 jobs -> 4 rows), each from its own seed's z;
    a job with other settings (here n_iter) runs in a batch of its own."""
    made = service(start=False)
    client = client_of(made)
    alone = post(client, png(face(5)), mask_png(SIZE, SIZE, BOX), seed=11).json()["id"]
    made.start()
    alone_state = wait_done(client.get, alone)
    alone_result = decode(client.get(f"/api/jobs/{alone}/result.png").content).astype(int)
    made.stop()

    made = service(start=False)
    client = client_of(made)
    ids = [post(client, png(face(5)), mask_png(SIZE, SIZE, BOX), seed=11).json()["id"],
           post(client, png(face(6)), mask_type="left", seed=12).json()["id"],
           post(client, png(face(7)), mask_type="top").json()["id"],
           post(client, png(face(8)), mask_type="top", n_iter=4).json()["id"]]
    made.start()
    states = [wait_done(client.get, job_id) for job_id in ids]
    assert [s["batch"] for s in states] == [{"jobs": 3, "rows": 4}] * 3 + [{"jobs": 1, "rows": 1}]
    assert states[2]["seed"] is not None  # drawn, and reported
    ours = decode(client.get(f"/api/jobs/{ids[0]}/result.png").content).astype(int)
    made.stop()
    assert alone_state["batch"] == {"jobs": 1, "rows": 1}
    assert abs(states[0]["loss"] - alone_state["loss"]) <= 1e-4 * abs(alone_state["loss"])
    assert np.abs(ours - alone_result).max() <= 1


def test_jobs_start_from_the_encoder_whatever_their_batch_mates():
    """With the model's encoder, a job's z starts at its guess for the job's own image (the encoder runs
    on the batch's rows): the same result alone and in a batch with others; z_init=random does not ask it."""
    from dcgan_completion import encoder
    start, rows = encoder.for_model(model()), []

    def recording(images, masks):
        rows.append(int(images.shape[0]))
        return start(images, masks)
    results = {}
    for name, jobs in (("alone", [dict()]), ("batched", [dict(), dict(mask_type="left"), dict(mask_type="top")]),
                       ("random", [dict(z_init="random")])):
        made = service(start=False, encoder=recording)
        client = client_of(made)
        ids = [post(client, png(face(5 + i)), mask_png(SIZE, SIZE, BOX), seed=11, **job).json()["id"]
               for i, job in enumerate(jobs)]
        made.start()
        states = [wait_done(client.get, job_id) for job_id in ids]
        assert states[0]["state"] == "done", states[0]
        results[name] = (states[0], decode(client.get(f"/api/jobs/{ids[0]}/result.png").content).astype(int))
        made.stop()
    assert rows == [1, 4]  # alone: its row; batched: the padded batch's 4 rows; random: never
    assert results["batched"][0]["batch"] == {"jobs": 3, "rows": 4}
    assert abs(results["batched"][0]["loss"] - results["alone"][0]["loss"]) <= 1e-4 * abs(results["alone"][0]["loss"])
    assert np.abs(results["batched"][1] - results["alone"][1]).max() <= 1


def test_bucket_sizes():
    assert [bucket(n, 8) for n in (1, 2, 3, 4, 5, 8)] == [1, 2, 4, 4, 8, 8]
    assert [bucket(n, 6) for n in (3, 5, 6)] == [4, 6, 6] and bucket(9, 8) == 9


def declared_png(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares width x height (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


PYTHON_WORDS = re.compile(r"<class|UploadFile|NoneType|Traceback|\b[A-Z]\w*(Error|Exception)\b")


def test_bad_inputs_are_one_line_errors_and_the_server_goes_on(client, caplog):
    image = png(face(9))
    bomb = declared_png(20000, 20000)
    assert len(bomb) < 200
    malformed = (b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nBad"Header: 1\r\n\r\n'
                 b'abc\r\n--x--\r\n')
    caplog.set_level(logging.WARNING)
    cases = [
        (post(client, bomb), 413, "20000x20000 is 400.0 megapixels"),
        (post(client, image, bomb), 413, "mask 'mask.png': 20000x20000"),
        (client.post("/api/jobs", data={"image": "not a file"}), 422, "image: must be a file"),
        (client.post("/api/jobs", content=malformed, headers={"content-type": "multipart/form-data; boundary=x"}),
         400, "multipart"),
        (post(client, b"not an image at all"), 400, "not an image"),
        (post(client, image[: len(image) // 2]), 400, "cannot read image"),
        (post(client, b""), 400, "empty"),
        (post(client, image, png(np.full((SIZE, SIZE), 255, np.uint8))), 422, "nothing to fill"),
        (post(client, image, png(np.zeros((SIZE, SIZE), np.uint8))), 422, "no pixel is known"),
        (post(client, image, mask_png(20, 20, BOX)), 422, "not the image's 16x16"),
        (post(client, image, mask=None, mask_type="full"), 422, "mask_type"),
        (post(client, image, n_iter=0), 422, "n_iter"),
        (post(client, image, n_iter="many"), 422, "n_iter"),
        (post(client, image, n_iter=10 ** 6), 422, "n_iter"),
        (post(client, image, lr=-1), 422, "lr"),
        (post(client, image, lr="nan"), 422, "lr"),
        (post(client, image, approach="sgd"), 422, "approach"),
        (post(client, image, blend="soft"), 422, "blend"),
        (post(client, image, seed=-3), 422, "seed"),
        (post(client, image, center_scale=0.9), 422, "center_scale"),
        (post(client, image, n_iter=1000, out_interval=1), 422, "out_interval"),
        (client.post("/api/jobs", data={"n_iter": "3"}), 422, "image"),
        (client.get("/api/jobs/nope"), 404, "nope"),
        (client.get("/api/jobs/nope/result.png"), 404, "nope"),
        (client.get("/api/jobs/nope/events"), 404, "nope"),
        (client.get("/api/nothing"), 404, ""),
    ]
    for response, status, words in cases:
        message = is_one_line_error(response, status)
        assert words.lower() in message.lower(), (words, response.text)
        assert not PYTHON_WORDS.search(message), message
    assert not [record for record in caplog.records if record.name.startswith(("python_multipart", "multipart"))]
    done(client, post(client, image, mask_type="center"))  # still serving


def test_cancel_a_waiting_job(served):
    made = service(start=False)
    client = client_of(made)
    first = post(client, png(face(1)), mask_type="center", seed=1).json()["id"]
    second = post(client, png(face(2)), mask_type="center", seed=2).json()["id"]
    cancelled = client.delete(f"/api/jobs/{first}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert client.get(f"/api/jobs/{second}").json()["queue_position"] == 0
    assert "cancelled" in is_one_line_error(client.get(f"/api/jobs/{first}/result.png"), 409)
    assert "nothing to cancel" in is_one_line_error(client.delete(f"/api/jobs/{first}"), 409)
    is_one_line_error(client.delete("/api/jobs/nope"), 404)
    made.start()
    assert wait_done(client.get, second)["batch"] == {"jobs": 1, "rows": 1}  # the cancelled job was dropped
    assert client.get(f"/api/jobs/{first}").json()["state"] == "cancelled"
    assert "nothing to cancel" in is_one_line_error(client.delete(f"/api/jobs/{second}"), 409)
    assert made.store.stats()["cancelled"] == 1
    made.stop()


LONG = {"n_iter": 300, "out_interval": 10}  # 30 chunks: a cancel after the first leaves many to go


def pair(made, client) -> list[str]:
    return [post(client, png(face(30)), mask_png(SIZE, SIZE, BOX), seed=30, **LONG).json()["id"],
            post(client, png(face(31)), mask_type="left", seed=31, **LONG).json()["id"]]


def wait_running(made, job_id: str, iteration: int = 10) -> None:
    """Until the job has reported `iteration` (woken by the store at once, so the cancel comes early)."""
    job = made.store.get(job_id)
    with made.store.changed:
        assert made.store.changed.wait_for(lambda: job.iteration >= iteration or job.finished, 120)
    assert job.state == "running", job.state


def test_cancel_a_running_job_leaves_its_batch_mates_unchanged(served):
    made = service(start=False)
    client = client_of(made)
    ids = pair(made, client)
    made.start()
    reference = [wait_done(client.get, job_id, timeout=240) for job_id in ids]
    expected = decode(client.get(f"/api/jobs/{ids[1]}/result.png").content)
    made.stop()

    made = service(start=False)
    client = client_of(made)
    ids = pair(made, client)
    made.start()
    wait_running(made, ids[0])
    cancelled = client.delete(f"/api/jobs/{ids[0]}").json()
    assert cancelled["state"] == "cancelled" and cancelled["iteration"] < LONG["n_iter"]
    mate = wait_done(client.get, ids[1], timeout=240)
    ours = decode(client.get(f"/api/jobs/{ids[1]}/result.png").content)
    assert mate["state"] == "done" and mate["batch"] == reference[1]["batch"] == {"jobs": 2, "rows": 2}
    assert mate["loss"] == reference[1]["loss"] and (ours == expected).all()  # as without the cancel
    later = client.get(f"/api/jobs/{ids[0]}").json()
    assert later["state"] == "cancelled" and later["iteration"] == cancelled["iteration"]  # no report after it
    with client.stream("GET", f"/api/jobs/{ids[0]}/events") as stream:
        events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    assert [event["state"] for event in events] == ["cancelled"]

    # A batch whose every job is cancelled stops at its next chunk: the worker goes on at once.
    alone = post(client, png(face(32)), mask_type="center", seed=32, n_iter=10000, out_interval=20).json()["id"]
    wait_running(made, alone, iteration=20)
    client.delete(f"/api/jobs/{alone}")
    after = post(client, png(face(33)), mask_type="center", seed=33).json()["id"]
    assert wait_done(client.get, after)["state"] == "done"
    stopped = client.get(f"/api/jobs/{alone}").json()
    made.stop()
    assert stopped["state"] == "cancelled" and stopped["iteration"] < 10000
    assert made.worker.batches == 2  # the pair's and the last job's; the cancelled one's did not end


def test_limits_answer_413_429_and_409():
    limits = Limits(max_pixels=24 * 24, max_upload_bytes=4000)
    made = service(store=JobStore(max_queue=2), limits=limits, start=False)
    client = client_of(made)
    assert "megapixels" in is_one_line_error(post(client, png(face(1, size=32))), 413)
    noise = png(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    assert len(noise) > 4000
    is_one_line_error(post(client, noise), 413)
    is_one_line_error(client.post("/api/jobs", content=b"x" * (3 * 4000 + 2 ** 20),
                                  headers={"content-type": "multipart/form-data; boundary=x"}), 413)
    first = post(client, png(face(1))).json()["id"]
    post(client, png(face(2)))
    response = post(client, png(face(3)))
    assert "queue is full" in is_one_line_error(response, 429) and response.headers["retry-after"]
    assert "not ready" in is_one_line_error(client.get(f"/api/jobs/{first}/result.png"), 409)
    assert client.get(f"/api/jobs/{first}").json()["queue_position"] == 0
    made.stop()
    assert client.get(f"/api/jobs/{first}").json()["state"] == "failed"


def _finished_job(store: JobStore, size: int) -> Job:
    job = Job(service_settings(), np.zeros((1, SIZE, SIZE, 3), np.uint8), np.ones((1, SIZE, SIZE, 1), np.float32),
              "none", "face", SIZE, SIZE, finish=None, frame=None)
    store.add(job)
    store.next_batch(8, 0)
    store.finish(job, {"result.png": b"x" * size})
    return job


def service_settings():
    from webapp_support import DEFAULTS
    return DEFAULTS


def test_store_keeps_its_bounds():
    store = JobStore(max_jobs=3, max_bytes=10_000, ttl=60)
    jobs = [_finished_job(store, 100) for _ in range(5)]
    assert list(store.jobs) == [job.id for job in jobs[2:]]  # the oldest dropped
    big = [_finished_job(store, 4000) for _ in range(3)]
    assert store.held_bytes() <= 10_000 and big[-1].id in store.jobs and big[0].id not in store.jobs
    store.ttl = 0.0
    time.sleep(0.01)
    assert store.get(big[-1].id) is None and store.stats()["jobs"] == 0
