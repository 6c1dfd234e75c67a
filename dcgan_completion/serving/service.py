"""The service behind the routes: the model's description, the jobs' defaults and limits, and
turning one request (an image, a mask or a mask type, options) into a Job for the store.

An aligned face of any size is resized to the model's size as complete.py resizes its inputs,
and its result keeps every pixel outside the hole exactly; a whole photo goes through
photo_completion (faces found and aligned as --photos finds them), each face a row of the batch.
"""
from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

import utils
from dcgan_completion import runtime
from dcgan_completion.completion import photos as photo_completion
from dcgan_completion.completion.settings import APPROACHES, BLENDS, CompletionSettings
from dcgan_completion.faces import framing
from dcgan_completion.networks.storage import model_knows
from dcgan_completion.serving import imaging
from dcgan_completion.serving.imaging import BadInput
from dcgan_completion.serving.jobs import Job, JobStore, Worker, new_seed
from dcgan_completion.serving.request import JobRequest

MAX_SEED = 2 ** 63 - 1


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (every bound answers 413 or 422)."""
    max_upload_bytes: int = 32 << 20     # each uploaded file
    max_pixels: int = 4096 * 4096        # an image's width x height
    max_iter: int = 10000                # n_iter
    max_frames: int = 500                # n_iter / out_interval: frames kept for the live view and GIF
    max_z_candidates: int = 64
    max_hmc_l: int = 1000


@dataclass(frozen=True)
class Defaults:
    """The server's command line: the jobs' settings, blend and mask."""
    settings: CompletionSettings
    blend: str = "poisson"
    mask_type: str = "center"
    center_scale: float = 0.25
    iterations_given: bool = True   # --nIter given; else the start's default (completion_settings.default_iterations)


class Service:
    def __init__(self, model, defaults: Defaults, limits: Limits = Limits(), store: JobStore | None = None,
                 checkpoint: str = "", precision: str = "float32", log=None, engines=None, encoder=None):
        """encoder: the checkpoint's encoder (encoder.py): jobs whose z_init is "encoder" start from it."""
        self.model, self.defaults, self.limits = model, defaults, limits
        self.store = store if store is not None else JobStore()
        self.worker = Worker(self.store, model, defaults.settings.batch_size, log=log, engines=engines,
                             encoder=encoder)
        self.checkpoint, self.precision = checkpoint, precision
        self.log = log or (lambda text: None)
        self.faces_lock = threading.Lock()  # dlib's detector, one photo at a time
        self._device = None

    def start(self, warm_up: bool = False) -> "Service":
        """Start the worker; warm_up: trace the default settings' compiled functions first."""
        if warm_up:
            self.worker.warm_up(self.defaults.settings)
        self.worker.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.worker.stop(timeout)

    def begin_stop(self) -> None:
        """Fail the waiting and running jobs now (their event streams end), without waiting."""
        self.worker.begin_stop()

    # -- the model ---------------------------------------------------------
    def device(self) -> str:
        if self._device is None:
            gpus = tf.config.list_logical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
                self._device = f"{gpus[0].name} ({details.get('device_name', 'GPU')})"
            else:
                self._device = f"CPU ({runtime.cpu_info()[0] or 'unknown model'})"
        return self._device

    def model_framing(self) -> dict | None:
        """How the model's faces were cut (framing.py): whole photos are cut the same way."""
        return json.loads(getattr(self.model, "framing_json", "") or "null")

    def model_info(self) -> dict:
        model, settings = self.model, self.defaults.settings
        defaults = dataclasses.asdict(settings)
        for name in ("batch_size", "xla", "lowres", "seed"):
            defaults.pop(name)
        defaults.update(blend=self.defaults.blend, mask_type=self.defaults.mask_type,
                        center_scale=self.defaults.center_scale, seed=settings.seed)
        return {"image_size": model.image_size, "z_dim": model.z_dim, "gf_dim": model.gf_dim,
                "df_dim": model.df_dim, "layout": model.layout, "channels": model.c_dim,
                "precision": self.precision, "device": self.device(), "checkpoint": self.checkpoint,
                "knows": model_knows(self.checkpoint) if self.checkpoint else None,
                "framing": framing.describe(self.model_framing()),
                "batch_size": settings.batch_size, "mask_types": list(imaging.MASK_TYPES), "blends": list(BLENDS),
                "approaches": list(APPROACHES), "defaults": defaults,
                "limits": dataclasses.asdict(self.limits), "jobs": self.store.stats()}

    # -- requests ------------------------------------------------------------
    def settings_for(self, request: JobRequest, seed: int, lowres: bool) -> CompletionSettings:
        """The job's CompletionSettings: the server's defaults with the request's options; 422 if out of range."""
        try:
            settings = dataclasses.replace(self.defaults.settings, **request.settings_changes(), seed=seed,
                                           lowres=lowres)
        except ValueError as error:
            raise BadInput(422, str(error).splitlines()[0]) from None
        limits = self.limits
        if settings.n_iter > limits.max_iter:
            raise BadInput(422, f"n_iter must be at most {limits.max_iter} on this server, not {settings.n_iter}")
        if settings.tune_g and settings.tune_steps > limits.max_iter:
            raise BadInput(422, f"tune_steps must be at most {limits.max_iter} on this server, "
                                f"not {settings.tune_steps}")
        frames = -(-settings.n_iter // settings.out_interval)
        if frames > limits.max_frames:
            raise BadInput(422, f"out_interval {settings.out_interval} gives {frames} frames for n_iter "
                                f"{settings.n_iter}; this server keeps at most {limits.max_frames}: raise out_interval")
        if settings.z_candidates > limits.max_z_candidates:
            raise BadInput(422, f"z_candidates must be at most {limits.max_z_candidates}, not {settings.z_candidates}")
        if settings.hmc_l > limits.max_hmc_l:
            raise BadInput(422, f"hmc_l must be at most {limits.max_hmc_l}, not {settings.hmc_l}")
        return settings

    def choices(self, seed: int | None, blend: str | None, mask_type: str | None,
                center_scale: float | None) -> tuple[int, str, str, float]:
        """(seed, blend, mask type, center scale), each given or the server's; 422 if out of range."""
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise BadInput(422, f"seed must be in [0, 2^63 - 1], not {seed}")
        if seed is None:
            seed = self.defaults.settings.seed if self.defaults.settings.seed is not None else new_seed()
        blend = blend if blend is not None else self.defaults.blend
        if blend not in BLENDS:
            raise BadInput(422, f"blend must be one of {', '.join(BLENDS)}, not {blend!r}")
        mask_type = mask_type if mask_type is not None else self.defaults.mask_type
        if mask_type not in imaging.MASK_TYPES:
            raise BadInput(422, f"mask_type must be one of {', '.join(imaging.MASK_TYPES)}, not {mask_type!r}")
        scale = center_scale if center_scale is not None else self.defaults.center_scale
        if not 0.0 <= scale <= 0.5:
            raise BadInput(422, f"center_scale must be in [0, 0.5], not {scale}")
        return seed, blend, mask_type, scale

    def submit(self, image: bytes, image_name: str | None, mask: bytes | None, mask_name: str | None,
               request: JobRequest) -> Job:
        """Validate, decode and plan one request, and queue it; BadInput or Busy if refused."""
        seed, blend, mask_type, scale = self.choices(request.seed, request.blend, request.mask_type,
                                                     request.center_scale)
        lowres = mask is None and mask_type == "lowres"
        settings = self.settings_for(request, seed, lowres)
        for data, field in ((image, "image"), (mask, "mask")):
            if data is not None:
                self.check_upload(len(data), field)
        size = self.model.image_size
        what = imaging.label("image", image_name)
        if request.photo:
            if self.model.c_dim != 3:
                raise BadInput(422, "whole photos need a colour model; this one is grayscale")
            if lowres:
                raise BadInput(422, "mask_type lowres is for aligned faces, not whole photos")
        pixels = imaging.decode_image(image, what, 3 if request.photo else self.model.c_dim, self.limits.max_pixels)
        photo, why = request.photo, None
        if photo is None:
            photo, why = self.looks_like_photo(pixels, lowres)
        height, width = pixels.shape[:2]
        if mask is not None:
            keep = imaging.decode_mask(mask, imaging.label("mask", mask_name), height, width, self.limits.max_pixels)
            model_mask = None
        else:
            model_mask = imaging.builtin_mask(mask_type, size, scale, seed)
            keep = ~imaging.hole_at(model_mask, height, width)
        if photo:
            job = self._photo_job(pixels, keep, settings, blend)
        else:
            job = self._face_job(pixels, keep, model_mask, settings, blend)
        if why:
            job.notes.insert(0, why)
        return self.store.add(job)

    def check_upload(self, size: int, field: str) -> None:
        """413 for an uploaded file of `size` bytes over the server's limit."""
        limit = self.limits.max_upload_bytes
        if size > limit:
            raise BadInput(413, f"{field}: {size / 2**20:.1f} MiB, over this server's limit of {limit / 2**20:.0f} MiB")

    def looks_like_photo(self, pixels: np.ndarray, lowres: bool = False) -> tuple[bool, str]:
        """A request that does not say `photo`: (whole photo?, the job's note), photos.looks_like_photo's
        rule; an aligned face for a grayscale model or the lowres mask, which photos cannot take."""
        if self.model.c_dim != 3:
            return False, photo_completion.decision_note(False, "whole photos need a colour model")
        if lowres:
            return False, photo_completion.decision_note(False, "mask_type lowres is for aligned faces")
        with self.faces_lock:
            photo, why = photo_completion.looks_like_photo(pixels, self.model.image_size, cut=self.model_framing())
        return photo, photo_completion.decision_note(photo, why)

    def inspect(self, image: bytes, image_name: str | None) -> dict:
        """What a job of this image, not saying `photo`, would be: {"photo", "why", "width", "height"}."""
        self.check_upload(len(image), "image")
        pixels = imaging.decode_image(image, imaging.label("image", image_name), self.model.c_dim,
                                      self.limits.max_pixels)
        photo, why = self.looks_like_photo(pixels)
        return {"photo": photo, "why": why, "width": pixels.shape[1], "height": pixels.shape[0]}

    def _face_job(self, image: np.ndarray, keep: np.ndarray, model_mask: np.ndarray | None,
                  settings: CompletionSettings, blend: str) -> Job:
        size = self.model.image_size
        if model_mask is None:
            model_mask = imaging.shrink_keep(keep, size)
            if model_mask.max() == 0.0:
                raise BadInput(422, f"mask: no pixel is left known at the model's {size}x{size}: paint a smaller hole")
        crop = utils.resize(image, size)  # as complete.py reads an input of another size

        def finish(fills):
            return imaging.finish_face(image, keep, model_mask, fills[0], blend)

        def frame(fills):
            return imaging.face_frame(image, keep, model_mask, fills[0])

        return Job(settings, crop[None], model_mask[None], blend, "face", image.shape[1], image.shape[0],
                   finish, frame, held_bytes=image.nbytes * 2 + keep.nbytes + model_mask.nbytes)

    def _photo_job(self, image: np.ndarray, keep: np.ndarray, settings: CompletionSettings, blend: str) -> Job:
        with self.faces_lock:
            try:
                faces = photo_completion.prepare_photo(image, ~keep, self.model.image_size, cut=self.model_framing())
            except photo_completion.PhotoError as error:
                raise BadInput(422, f"photo: {error}") from None
        if len(faces) > self.defaults.settings.batch_size:
            raise BadInput(422, f"photo: {len(faces)} faces to fill, more than this server's batch size "
                                f"{self.defaults.settings.batch_size}")
        crops = np.stack([face.crop for face in faces])
        masks = np.stack([face.mask for face in faces]).astype(np.float32)
        note = photo_completion.outside_note(faces)

        def finish(fills):
            return photo_completion.paste_fills(image, faces, list(fills), blend)

        def frame(fills):
            return imaging.preview(photo_completion.paste_fills(image, faces, list(fills), "none"))

        held = image.nbytes * 2 + keep.nbytes + sum(face.hole.nbytes + face.outside.nbytes for face in faces) \
            + crops.nbytes + masks.nbytes
        return Job(settings, crops, masks, blend, "photo", image.shape[1], image.shape[0], finish, frame,
                   held_bytes=held, notes=[note] if note else [])

    def mask_preview(self, mask_type: str, width: int, height: int, center_scale: float | None,
                     seed: int | None) -> bytes:
        """A built-in mask at an image's size, white = keep, as a job with that type would use it."""
        if not (1 <= width and 1 <= height and width * height <= self.limits.max_pixels):
            raise BadInput(422, f"width x height must be between 1 and {self.limits.max_pixels} pixels")
        seed, _, mask_type, scale = self.choices(seed, None, mask_type, center_scale)
        model_mask = imaging.builtin_mask(mask_type, self.model.image_size, scale, seed)
        return imaging.mask_png(~imaging.hole_at(model_mask, height, width))
