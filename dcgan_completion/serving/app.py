"""The routes: the page, the REST API it uses, its OpenAPI description and an offline /docs page.

Every error is one JSON line, {"error": "..."}, FastAPI's own validation errors included, in
plain words (no Python type names). Who may call the routes: security.py.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import traceback
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Form
from fastapi import Path as PathParam
from fastapi import Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException

import utils
from dcgan_completion.serving.imaging import BadInput
from dcgan_completion.serving.jobs import ENDED, Busy, Job
from dcgan_completion.serving.request import JobRequest
from dcgan_completion.serving.security import Access, Guard
from dcgan_completion.serving.service import Service

STATIC = Path(__file__).resolve().parent / "static"
OUTPUTS = {"result.png": "image/png", "fill.png": "image/png", "completion.gif": "image/gif"}
EVENT_POLL_S, KEEPALIVE_S = 0.1, 15.0
# python-multipart logs each malformed body it meets; the client gets a 400 line instead.
for _name in ("python_multipart", "multipart"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class ErrorBody(BaseModel):
    error: str


ERRORS = {status: {"model": ErrorBody, "description": text} for status, text in {
    400: "an upload that is not an image, or is cut short", 401: "no token (a server beyond loopback)",
    403: "a change sent by a page of another site", 404: "no such job (or it expired)",
    409: "the job has no result yet, failed or was cancelled", 413: "an upload over the size limits",
    421: "a Host that is not this server's",
    422: "bad option values, a bad mask, or a photo without a face", 429: "the queue is full",
    503: "the server's memory budget is spent, or it is stopping"}.items()}


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    """FastAPI's first validation error as one line: 'n_iter: Input should be a valid integer ...'."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "form"))
    message = plain_message(str(first.get("msg", "invalid value")).splitlines()[0])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def plain_message(message: str) -> str:
    """pydantic's message without Python in it: 'Value error, Expected UploadFile, received: <class 'str'>'
    is 'must be a file (a multipart file field), not text'."""
    if "UploadFile" in message or "<class" in message:
        return "must be a file (a multipart file field), not text"
    return message.removeprefix("Value error, ")


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 (by its Content-Length,
    or by counting a body sent without one), before the upload is parsed or spooled."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"the request is over this server's limit of {self.limit / 2**20:.0f} MiB"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await error(413, message)(scope, receive, send)
        seen, over = 0, False

        async def counted():
            nonlocal seen, over
            event = await receive()
            seen += len(event.get("body", b""))
            if seen > self.limit:
                over = True
                raise BadInput(413, message)
            return event

        async def guarded(event):
            if not over:
                await send(event)

        try:
            await self.app(scope, counted, guarded)
        except BadInput:
            pass
        if over:
            await error(413, message)(scope, receive, send)


def create_app(service: Service, access: Access = Access()) -> FastAPI:
    """The FastAPI app on a started (or not yet started) Service; `access`: who may call it."""
    app = FastAPI(title="DCGAN image completion", version="1.0.0", docs_url=None, redoc_url=None,
                  description="Fill the missing parts of face images with a DCGAN (Yeh et al., after Amos 2016): "
                              "POST an image and a mask, follow the job, fetch its result. Masks: white (or "
                              "transparent) = keep, black (painted) = fill, at the image's size.")
    app.state.service = service
    app.add_middleware(BodyLimit, limit=2 * service.limits.max_upload_bytes + (1 << 20))
    if access.allow_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(access.allow_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization"])
    app.add_middleware(Guard, access=access)  # the outermost: before anything reads the request
    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api)
    return app


def current_service(request: Request) -> Service:
    return request.app.state.service


ServiceOf = Annotated[Service, Depends(current_service)]


# -- errors: every one a JSON line ------------------------------------------
async def bad_input(_request, exc: BadInput):
    return error(exc.status, exc.message)


async def busy(_request, exc: Busy):
    return error(exc.status, exc.message, {"Retry-After": "5"})


async def invalid(_request, exc: RequestValidationError):
    return error(422, validation_message(exc))


async def http_error(_request, exc: HTTPException):
    return error(exc.status_code, str(exc.detail).splitlines()[0], getattr(exc, "headers", None))


async def internal(request: Request, exc: Exception):
    current_service(request).log("".join(traceback.format_exception(exc)))
    return error(500, "internal error (the server's log has the details)")


HANDLERS = {BadInput: bad_input, Busy: busy, RequestValidationError: invalid, HTTPException: http_error,
            Exception: internal}


def find(service: Service, job_id: str) -> Job:
    job = service.store.get(job_id)
    if job is None:
        raise BadInput(404, f"no job {job_id[:40]!r} (unknown, or expired)")
    return job


# -- the page ---------------------------------------------------------------
pages = APIRouter(include_in_schema=False)


@pages.get("/")
async def page():
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@pages.get("/docs")
async def docs():
    return FileResponse(STATIC / "docs.html", headers={"Cache-Control": "no-cache"})


# -- the API ----------------------------------------------------------------
api = APIRouter(prefix="/api")


@api.get("/model", tags=["model"], summary="The model and the server's defaults and limits")
def model_info(service: ServiceOf) -> dict:
    """The model's image size, z_dim, gf_dim, df_dim, layout, channels, precision and device, the
    jobs' default settings (the server's command line), the limits, and the job store's counts."""
    return service.model_info()


@api.get("/masks/{mask_type}", tags=["masks"], summary="A built-in mask at an image's size",
         responses={200: {"content": {"image/png": {}}, "description": "white = keep, black = fill"}, **ERRORS})
def mask_preview(service: ServiceOf,
                 mask_type: Annotated[str, PathParam(description="center, left, right, top, bottom, random, grid, "
                                                                 "lowres")],
                 width: Annotated[int, Query(ge=1)], height: Annotated[int, Query(ge=1)],
                 center_scale: Annotated[float | None, Query(ge=0.0, le=0.5)] = None,
                 seed: Annotated[int | None, Query(ge=0)] = None) -> Response:
    """The mask a job with this mask_type (and seed, for random) gets, made at the model's size by
    masking.make_mask and shown at width x height."""
    return Response(service.mask_preview(mask_type, width, height, center_scale, seed), media_type="image/png")


@api.post("/jobs", status_code=202, tags=["jobs"], summary="Start a completion",
          responses={202: {"description": "queued: the job's state, with its id"}, **ERRORS})
async def submit(service: ServiceOf,
                 image: Annotated[UploadFile, File(description="the image: an aligned face (any size), "
                                                               "or a whole photo")],
                 request: Annotated[JobRequest, Form()],
                 mask: Annotated[UploadFile | None, File(description="white/transparent = keep, black = fill, at "
                                                                     "the image's size; overrides mask_type")] = None
                 ) -> JSONResponse:
    """Queue a completion and answer at once (202) with the job's id and state. A whole photo's
    faces are found before the answer (422 without one)."""
    image_bytes = await read_upload(service, image, "image")
    mask_bytes = await read_upload(service, mask, "mask") if mask is not None else None
    job = await run_in_threadpool(service.submit, image_bytes, image.filename, mask_bytes,
                                  mask.filename if mask is not None else None, request)
    _, state = service.store.snapshot(job)
    return JSONResponse(state, status_code=202, headers={"Location": f"/api/jobs/{job.id}"})


@api.post("/inspect", tags=["jobs"], summary="Whether an image would be completed as a whole photo",
          responses={200: {"description": '{"photo": true or false, "why": one line, "width", "height"}'},
                     **ERRORS})
async def inspect(service: ServiceOf,
                  image: Annotated[UploadFile, File(description="the image, as POST /api/jobs takes it")]) -> dict:
    """How a job of this image that does not say `photo` is completed: as a whole photo (through its
    faces) or as an aligned face, and why; the page sets its Whole photo switch from it."""
    return await run_in_threadpool(service.inspect, await read_upload(service, image, "image"), image.filename)


async def read_upload(service: Service, upload: UploadFile, field: str) -> bytes:
    """An upload's bytes, at most one past the server's limit (Service checks what was read); 413 at once
    where the upload declares a larger size."""
    if upload.size is not None:
        service.check_upload(upload.size, field)
    return await upload.read(service.limits.max_upload_bytes + 1)


@api.get("/jobs/{job_id}", tags=["jobs"], summary="A job's state", responses=ERRORS)
def job_state(service: ServiceOf, job_id: str) -> dict:
    """queued (with its queue position), running (iteration, loss), done (the results' URLs) or
    failed (error: one line)."""
    return service.store.snapshot(find(service, job_id))[1]


@api.get("/jobs/{job_id}/events", tags=["jobs"], summary="A job's progress, as server-sent events",
         responses={200: {"content": {"text/event-stream": {}}, "description": "one event per change"}, **ERRORS})
async def job_events(service: ServiceOf, job_id: str, request: Request) -> StreamingResponse:
    """Server-sent events: one `data:` JSON line per change of the job's state (as GET /api/jobs/{id}),
    while it runs with `frame`, a PNG data URL of the input with the current fill (the start's at
    once, then every out_interval iterations); the stream ends after done, failed or cancelled (also
    when the server stops: its jobs fail with "the server is stopping")."""
    return StreamingResponse(events(service.store, find(service, job_id), request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def events(store, job: Job, request: Request):
    """The job's event stream: a `data:` line per new state (with the newest frame while it runs)."""
    sent, frames, beat = -1, 0, time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        version, state = store.snapshot(job)
        if version != sent:
            sent = version
            if state["state"] == "running" and len(job.frames) > frames:
                frames = len(job.frames)
                frame = await run_in_threadpool(render_frame, job)
                if frame is not None:
                    state["frame"] = frame
            yield f"data: {json.dumps(state)}\n\n"
            beat = time.monotonic()
            if state["state"] in ENDED:
                return
        elif time.monotonic() - beat > KEEPALIVE_S:
            yield ": keep-alive\n\n"
            beat = time.monotonic()
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENT_POLL_S)


@api.delete("/jobs/{job_id}", tags=["jobs"], summary="Cancel a job", responses=ERRORS)
def cancel_job(service: ServiceOf, job_id: str) -> dict:
    """A waiting job leaves the queue; a running one stops at its next compiled chunk (the jobs
    sharing its batch go on, with the results they would have had). The job's state is then
    cancelled; 409 if it had already ended."""
    job = find(service, job_id)
    if not service.store.cancel(job):
        raise BadInput(409, f"job {job.id} is {job.state}: there is nothing to cancel")
    return service.store.snapshot(job)[1]


def output(service: Service, job_id: str, name: str) -> Response:
    job = find(service, job_id)
    if job.state == "failed":
        raise BadInput(409, f"job {job.id} failed: {job.error}")
    if job.state == "cancelled":
        raise BadInput(409, f"job {job.id} was cancelled; it has no {name}")
    if job.state != "done":
        raise BadInput(409, f"job {job.id} is {job.state}; its {name} is not ready")
    # inline, without a file name: the page's <a download="NAME"> names the download
    return Response(job.outputs[name], media_type=OUTPUTS[name],
                    headers={"Content-Disposition": "inline", "Cache-Control": "private, max-age=3600"})


@api.get("/jobs/{job_id}/result.png", tags=["results"], summary="The completed image, at the input's size",
         responses={200: {"content": {"image/png": {}}, "description": "PNG"}, **ERRORS})
def result_png(service: ServiceOf, job_id: str) -> Response:
    """The input with its hole filled: known pixels exactly the input's, the fill Poisson-blended
    (blend poisson) or pasted (none); at the model's size, complete.py's final/ image."""
    return output(service, job_id, "result.png")


@api.get("/jobs/{job_id}/fill.png", tags=["results"], summary="The generator's whole image G(z)",
         responses={200: {"content": {"image/png": {}}, "description": "PNG"}, **ERRORS})
def fill_png(service: ServiceOf, job_id: str) -> Response:
    """G(z) at the model's size (complete.py's fill/), one tile per face for a photo."""
    return output(service, job_id, "fill.png")


@api.get("/jobs/{job_id}/completion.gif", tags=["results"], summary="The fill, frame by frame",
         responses={200: {"content": {"image/gif": {}}, "description": "GIF"}, **ERRORS})
def completion_gif(service: ServiceOf, job_id: str) -> Response:
    """The input with the fill at iterations 0, out_interval, ..., n_iter (complete.py's completion.gif)."""
    return output(service, job_id, "completion.gif")


def render_frame(job: Job) -> str | None:
    """The job's latest frame as a PNG data URL (None once the job has moved on)."""
    try:
        _, fills = job.frames[-1]
        png = utils.png_bytes(job.frame(utils.to_float(fills)))
    except Exception:  # finished meanwhile: its frames are gone
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
