"""Only the page itself may use the server: a foreign Host is refused (DNS rebinding), a change sent
by another site's page is refused (and changes nothing), CORS headers appear only for --allowOrigin,
and with a token (beyond loopback) nothing works without it; every refusal is one JSON line."""
from __future__ import annotations

import warnings

import pytest

from webapp_support import face, png, service

warnings.filterwarnings("ignore", message=".*httpx.*")
from fastapi.testclient import TestClient  # noqa: E402

from dcgan_completion.serving.app import create_app  # noqa: E402
from dcgan_completion.serving.security import Access  # noqa: E402
from dcgan_completion.serving.server import access_for  # noqa: E402

FOREIGN = "http://evil.example"


@pytest.fixture(scope="module")
def made():
    # Not started: the jobs these tests send wait in the queue, so nothing runs on the model.
    made = service(start=False)
    yield made
    made.stop()


def client(made, base_url: str = "http://127.0.0.1:8080", **access) -> TestClient:
    return TestClient(create_app(made, Access(**access)), base_url=base_url)


def post_job(http: TestClient, **headers):
    return http.post("/api/jobs", files={"image": ("face.png", png(face(1)), "image/png")}, headers=headers)


def refused(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert list(body) == ["error"] and body["error"] and "\n" not in body["error"]
    assert not any(name.lower().startswith("access-control-") for name in response.headers)
    return body["error"]


def test_a_foreign_host_is_refused(made):
    http = client(made)
    for path in ("/", "/api/model", "/docs", "/openapi.json", "/static/app.js", "/api/jobs/x/result.png"):
        assert "evil.example.com" in refused(http.get(path, headers={"host": "evil.example.com"}), 421)
    jobs = made.store.stats()["jobs"]
    refused(post_job(http, host="evil.example.com:8080"), 421)
    assert made.store.stats()["jobs"] == jobs  # nothing was queued
    for host in ("127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080", "127.0.0.2"):
        assert http.get("/api/model", headers={"host": host}).status_code == 200, host


def test_allow_host_and_every_interface():
    made_access = Access(host="127.0.0.1", allow_hosts=("faces.lan",))
    assert made_access.host_allowed("faces.lan") and not made_access.host_allowed("other.lan")
    everywhere = Access(host="0.0.0.0")  # the machine's addresses, as the LAN types them
    assert everywhere.host_allowed("192.168.1.20") and everywhere.host_allowed("::1")
    assert not everywhere.host_allowed("evil.example.com") and not everywhere.host_allowed(None)
    one = Access(host="10.0.0.5")
    assert one.host_allowed("10.0.0.5") and not one.host_allowed("10.0.0.6")


def test_a_change_from_another_site_is_refused(made):
    http = client(made)
    jobs = made.store.stats()["jobs"]
    assert "evil.example" in refused(post_job(http, origin=FOREIGN), 403)
    refused(post_job(http, origin="null"), 403)  # a sandboxed frame or a file:// page
    assert made.store.stats()["jobs"] == jobs
    ours = post_job(http, origin="http://127.0.0.1:8080")  # the page's own POST
    assert ours.status_code == 202, ours.text
    job_id = ours.json()["id"]
    refused(http.delete(f"/api/jobs/{job_id}", headers={"origin": FOREIGN}), 403)
    assert http.get(f"/api/jobs/{job_id}").json()["state"] == "queued"
    assert post_job(http).status_code == 202  # curl sends no Origin
    read = http.get("/api/model", headers={"origin": FOREIGN})  # served, but the browser may not read it
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers


def test_allow_origin_gets_cors(made):
    http = client(made, allow_origins=("http://tool.example",))
    accepted = post_job(http, origin="http://tool.example")
    assert accepted.status_code == 202 and accepted.headers["access-control-allow-origin"] == "http://tool.example"
    preflight = http.options("/api/jobs", headers={"origin": "http://tool.example",
                                                    "access-control-request-method": "DELETE"})
    assert preflight.status_code == 200 and "DELETE" in preflight.headers["access-control-allow-methods"]
    refused(post_job(http, origin=FOREIGN), 403)


def test_beyond_loopback_nothing_works_without_the_token(made):
    assert access_for("127.0.0.1").token is None and access_for("::1").token is None
    generated = access_for("0.0.0.0").token
    assert generated and len(generated) >= 24 and generated != access_for("0.0.0.0").token
    assert access_for("0.0.0.0", token="given").token == "given"

    http = client(made, base_url="http://192.168.1.20:8080", host="0.0.0.0", token="s3cret-token")
    for path in ("/", "/api/model", "/docs", "/static/app.js", "/api/jobs/x"):
        assert "token" in refused(http.get(path), 401)
    refused(post_job(http), 401)
    refused(http.get("/api/model", params={"token": "wrong"}), 401)
    refused(http.get("/api/model", headers={"authorization": "Bearer wrong"}), 401)
    refused(http.get("/api/model", headers={"cookie": "dcgan-token-8080=wrong"}), 401)
    assert http.get("/api/model", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
    refused(post_job(http, authorization="Bearer s3cret-token", origin=FOREIGN), 403)  # the token is not enough

    # The printed address: the page keeps the token in a cookie and the address bar loses it.
    opened = http.get("/", params={"token": "s3cret-token"}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("dcgan-token-8080=s3cret-token") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = http.get("/")  # the client now sends the cookie, as the browser does
    assert page.status_code == 200 and "Painted = fill" in page.text
    job = post_job(http, origin="http://192.168.1.20:8080")
    assert job.status_code == 202, job.text
    assert http.get(f"/api/jobs/{job.json()['id']}").json()["state"] == "queued"
