"""``agecheck serve``: the HTTP service. POST a photo, get an age estimate and a decision per face.

* ``POST /predict``: the photo as the raw body (``Content-Type: image/jpeg``, ``image/png``...) or
  as the ``photo`` field of a ``multipart/form-data`` form; ``?detect=false`` for a photo that is
  already a face crop. Answer: one entry per face with its box, the age estimate, an interval and
  the Challenge-25 decision.
* ``GET /health``: ready, with the model and limits. OpenAPI docs at ``/docs``.

Hostile input is expected: the body is read into memory only up to ``max_bytes`` (413 beyond),
only image content types are accepted (415), the pixel count is checked from the header before
decoding (413: decompression bombs), and every unreadable photo gets a 4xx JSON error
``{"error": code, "detail": text}``. Photos are biometric data: they are never written to disk,
and nothing about them (bytes, file names, ages) is logged.

The model is loaded once per worker process. Decoding and face detection run on a small thread
pool; the face crops of concurrent requests are gathered into batches for the age model by a
:class:`Batcher` that runs the model on its own thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException

from agecheck.challenge25 import Policy
from agecheck.estimates import AgeEstimate, AgeEstimator
from agecheck.faces import CropSpec, DetectorConfig, FaceDetector
from agecheck.images import PhotoLimits, PhotoRejected, normalize_photo
from agecheck.till import decision, detect_settings, face_crops

log = logging.getLogger("agecheck.service")

#: Content types accepted for the photo, and the Pillow decoder allowed to open each.
IMAGE_TYPES = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
}
#: Room for the multipart framing around the photo.
MULTIPART_OVERHEAD = 64 * 1024
#: HTTP status for each reason a photo is rejected (``agecheck.images.PhotoRejected``).
REJECTION_STATUS = {"too_large": 413, "empty_file": 400, "not_an_image": 415}


@dataclass(frozen=True)
class ServeConfig:
    """Service settings (``params.yaml``, ``serve:``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_bytes: int = 10_000_000
    max_pixels: int = 40_000_000
    min_side: int = 32
    batch_size: int = 16
    batch_wait_ms: float = 0.0
    cpu_threads: int = 2
    interval: float = 0.8

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ServeConfig:
        block = params.get("serve") or {}
        fields = cls.__dataclass_fields__
        unknown = sorted(set(block) - set(fields))
        if unknown:
            raise ValueError(f"unknown serve settings in params.yaml: {', '.join(unknown)}")
        return cls(**{name: type(getattr(cls, name))(value) for name, value in block.items()})

    @property
    def limits(self) -> PhotoLimits:
        return PhotoLimits(min_side=self.min_side, max_pixels=self.max_pixels, max_bytes=self.max_bytes)


@dataclass(frozen=True)
class Settings:
    """Everything the app needs besides the model."""

    serve: ServeConfig
    detector: DetectorConfig
    crop: CropSpec
    policy: Policy


class BadRequest(Exception):
    """A request the client must fix: answered with ``status`` and ``{"error", "detail"}``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


# --- response models (the OpenAPI schema) -------------------------------------------------------


class BoxOut(BaseModel):
    left: float
    top: float
    width: float
    height: float
    score: float


class FaceOut(BaseModel):
    box: BoxOut | None  # None with detect=false: the whole photo is the face
    age: float
    age_low: float
    age_high: float
    age_sd: float | None
    interval: str
    decision: str


class PredictOut(BaseModel):
    status: str  # ok | no_face
    faces: list[FaceOut]
    width: int
    height: int
    threshold: float
    legal_age: float
    milliseconds: float


class ErrorOut(BaseModel):
    error: str
    detail: Any = None


# --- batching -----------------------------------------------------------------------------------


class Batcher:
    """Gathers face crops from concurrent requests and runs the age model on them in batches.

    The model runs on one dedicated thread. Whatever arrived while it was busy (up to
    ``max_batch`` crops, waiting at most ``max_wait`` seconds for more) forms the next batch.
    """

    def __init__(
        self, run: Callable[[np.ndarray], list[AgeEstimate]], max_batch: int, max_wait: float
    ) -> None:
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[list[AgeEstimate]]]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="age-model")
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, crops: np.ndarray) -> list[AgeEstimate]:
        """Estimates for ``crops`` (N x S x S x 3), computed with other requests' crops."""
        if len(crops) == 0:
            return []
        future: asyncio.Future[list[AgeEstimate]] = asyncio.get_running_loop().create_future()
        await self.queue.put((crops, future))
        return await future

    async def _next_batch(self) -> list[tuple[np.ndarray, asyncio.Future[list[AgeEstimate]]]]:
        items = [await self.queue.get()]
        count, deadline = len(items[0][0]), time.monotonic() + self.max_wait
        while count < self.max_batch:
            try:
                if self.queue.empty() and time.monotonic() < deadline:
                    item = await asyncio.wait_for(self.queue.get(), deadline - time.monotonic())
                else:
                    item = self.queue.get_nowait()
            except (asyncio.QueueEmpty, TimeoutError):
                break
            items.append(item)
            count += len(item[0])
        return items

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._next_batch()
            batch = np.concatenate([crops for crops, _ in items])
            try:
                estimates = await loop.run_in_executor(self.executor, self.run, batch)
            except Exception as err:  # noqa: BLE001 - handed to every waiting request
                for _, future in items:
                    if not future.done():
                        future.set_exception(err)
                continue
            start = 0
            for crops, future in items:
                if not future.done():  # the client may have gone away
                    future.set_result(estimates[start : start + len(crops)])
                start += len(crops)


# --- reading the upload -------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, "too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, "too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def multipart_photo(body: bytes, boundary: bytes, field: str = "photo") -> tuple[bytes, str]:
    """The content and content type of the form field ``field`` (parsed in memory)."""
    parts: list[dict[str, Any]] = []
    header: list[bytes] = [b"", b""]

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": []})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][header[0].decode("latin-1").lower()] = header[1]
        header[0], header[1] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"].append(data[start:end])

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except Exception as err:  # noqa: BLE001 - python-multipart raises several types
        raise BadRequest(400, "bad_multipart", f"the multipart body cannot be parsed: {err}") from None
    for part in parts:
        _, options = parse_options_header(part["headers"].get("content-disposition", b""))
        if options.get(b"name", b"").decode("latin-1") == field:
            content_type, _ = parse_options_header(part["headers"].get("content-type", b""))
            return b"".join(part["data"]), content_type.decode("latin-1").lower()
    raise BadRequest(422, "missing_photo", f"the form has no field '{field}' (send the photo as '{field}')")


def check_type(content_type: str) -> str:
    """The Pillow format allowed for ``content_type``; 415 for anything but a supported image."""
    if content_type not in IMAGE_TYPES:
        accepted = ", ".join(sorted(IMAGE_TYPES))
        raise BadRequest(
            415, "unsupported_media_type", f"content type '{content_type or 'none'}' is not one of {accepted}"
        )
    return IMAGE_TYPES[content_type]


async def read_photo_upload(request: Request, limits: PhotoLimits) -> tuple[bytes, str]:
    """The photo's bytes and format from a raw image body or a multipart form."""
    raw_type, options = parse_options_header(request.headers.get("content-type", ""))
    content_type = raw_type.decode("latin-1").lower()
    if content_type == "multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest(400, "bad_multipart", "multipart/form-data without a boundary")
        body = await read_body(request, limits.max_bytes + MULTIPART_OVERHEAD)
        data, content_type = multipart_photo(body, boundary)
    else:
        check_type(content_type)  # before reading a body that will be refused anyway
        data = await read_body(request, limits.max_bytes)
    image_format = check_type(content_type)
    if not data:
        raise BadRequest(400, "empty_body", "the photo is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise BadRequest(
            413, "too_large", f"photo of {len(data)} bytes exceeds the limit of {limits.max_bytes}"
        )
    return data, image_format


def check_header(data: bytes, image_format: str, limits: PhotoLimits) -> None:
    """Refuse, from the header alone, photos of another format than declared or with too many pixels.

    Only the declared format's decoder is tried, so no other Pillow plugin ever sees the bytes.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(data), formats=(image_format,)).size
    except Image.DecompressionBombError as err:
        raise PhotoRejected("too_large", str(err)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise PhotoRejected("not_an_image", f"not a readable {image_format} image") from None
    if width * height > limits.max_pixels:
        raise PhotoRejected("too_large", f"{width}x{height} pixels > {limits.max_pixels}")


# --- the app ------------------------------------------------------------------------------------


def _error(status: int, error: str, detail: Any = None) -> JSONResponse:
    return JSONResponse(ErrorOut(error=error, detail=detail).model_dump(), status_code=status)


class Pipeline:
    """Decode + detect + crop (thread pool, one detector per thread), then the batched model."""

    def __init__(self, estimator: AgeEstimator, settings: Settings) -> None:
        self.estimator, self.settings = estimator, settings
        self.local = threading.local()
        self.limiter = anyio.CapacityLimiter(max(1, settings.serve.cpu_threads))
        serve = settings.serve
        self.batcher = Batcher(
            lambda crops: estimator.estimate(crops, serve.batch_size),
            serve.batch_size,
            serve.batch_wait_ms / 1000,
        )

    def _detector(self) -> FaceDetector:
        detector = getattr(self.local, "detector", None)
        if detector is None:
            detector = self.local.detector = FaceDetector(self.settings.detector)
        return detector

    def prepare(self, data: bytes, image_format: str, detect: bool) -> tuple[Any, tuple[int, int]]:
        """Decode (upright RGB) and cut out the faces; PhotoRejected for unusable photos."""
        check_header(data, image_format, self.settings.serve.limits)
        image = normalize_photo(data, self.settings.serve.limits).image
        detector = self._detector() if detect else None
        return face_crops(image, self.estimator.input_size, detector, self.settings.crop), image.size

    async def __call__(self, data: bytes, image_format: str, detect: bool) -> PredictOut:
        started = time.perf_counter()
        try:
            crops, (width, height) = await anyio.to_thread.run_sync(
                self.prepare, data, image_format, detect, limiter=self.limiter
            )
        except PhotoRejected as err:
            raise BadRequest(
                REJECTION_STATUS.get(err.reason, 422), err.reason, err.detail or err.reason
            ) from None
        estimates = await self.batcher.submit(crops.arrays)
        policy = self.settings.policy
        faces = [
            FaceOut(
                box=None if box is None else BoxOut(**box.as_dict()),
                age=round(e.age, 1),
                age_low=round(e.low, 1),
                age_high=round(e.high, 1),
                age_sd=None if e.sd is None else round(e.sd, 2),
                interval=e.interval,
                decision=decision(e.age, policy),
            )
            for box, e in zip(crops.boxes, estimates, strict=True)
        ]
        return PredictOut(
            status="ok" if faces else "no_face",
            faces=faces,
            width=width,
            height=height,
            threshold=policy.threshold,
            legal_age=policy.legal_age,
            milliseconds=round((time.perf_counter() - started) * 1000, 1),
        )


PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"photo": {"type": "string", "format": "binary"}},
                "required": ["photo"],
            }
        },
        **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in ("image/jpeg", "image/png")},
    },
}
ERRORS = {code: {"model": ErrorOut} for code in (400, 413, 415, 422)}


def create_app(estimator: AgeEstimator, settings: Settings) -> FastAPI:
    """The FastAPI app around a loaded model."""
    pipeline = Pipeline(estimator, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(estimator.warm_up, settings.serve.batch_size)
        pipeline.batcher.start()
        yield
        await pipeline.batcher.stop()

    app = FastAPI(
        title="agecheck",
        description="Age estimation from till camera photos, with the Challenge-25 decision per face.",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, err: BadRequest) -> JSONResponse:
        return _error(err.status, err.error, err.detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, "http_error", err.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        detail = [{"where": list(e.get("loc", ())), "problem": e.get("msg", "")} for e in err.errors()]
        return _error(422, "invalid_request", detail)

    @app.exception_handler(Exception)
    async def internal(_: Request, err: Exception) -> JSONResponse:
        log.error("internal error: %s", type(err).__name__)  # never the request's content
        return _error(500, "internal_error", "the service failed on this request")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Ready to serve: the model, detector and limits in use."""
        return {
            "status": "ok",
            "model": estimator.predictor.info,
            "interval": "softmax" if estimator.softmax is not None else "val_mae",
            "detector": asdict(settings.detector),
            "crop": asdict(settings.crop),
            "policy": asdict(settings.policy),
            "limits": {"max_bytes": settings.serve.max_bytes, "max_pixels": settings.serve.max_pixels},
            "accepted_types": sorted(IMAGE_TYPES),
        }

    @app.post(
        "/predict", response_model=PredictOut, responses=ERRORS, openapi_extra={"requestBody": PREDICT_BODY}
    )
    async def predict(
        request: Request, detect: bool = Query(True, description="false: the photo is already a face crop")
    ) -> PredictOut:
        """Ages and Challenge-25 decisions for the faces in a photo (raw body or form field ``photo``)."""
        data, image_format = await read_photo_upload(request, settings.serve.limits)
        return await pipeline(data, image_format, detect)

    return app


# --- loading ------------------------------------------------------------------------------------

ENV_MODEL, ENV_PARAMS = "AGECHECK_MODEL", "AGECHECK_PARAMS"


def load_settings(params: dict[str, Any]) -> Settings:
    """Service settings from the parameter file's ``serve:``, ``detect:`` and ``policy:`` blocks."""
    detector, crop = detect_settings(params)
    return Settings(ServeConfig.from_params(params), detector, crop, Policy.from_params(params.get("policy")))


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (one per worker): model and params from the environment."""
    from agecheck.model_io import DEFAULT_MODEL, AgePredictor
    from agecheck.params import load_params

    settings = load_settings(load_params(os.environ.get(ENV_PARAMS, "params.yaml")))
    predictor = AgePredictor.load(Path(os.environ.get(ENV_MODEL, str(DEFAULT_MODEL))))
    return create_app(AgeEstimator(predictor, settings.serve.interval), settings)
