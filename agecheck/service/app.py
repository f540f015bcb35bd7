"""``agecheck serve``: the HTTP service. POST a photo, get an age estimate and a decision per face.

* ``POST /predict``: the photo as the raw body (``Content-Type: image/jpeg``, ``image/png``...) or
  as the ``photo`` field of a ``multipart/form-data`` form; ``?detect=false`` for a photo that is
  already a face crop; optional ``sale_id``, ``till`` and ``cashier`` for the estimates log. Answer:
  one entry per face with its box, the age estimate, an interval, the Challenge-25 decision, whether
  it is the customer's (the largest face) and the probabilities of a minor and of a customer under
  the threshold; ``customer``: the customer's face.
* ``GET /health``: ready, with the model and limits (no token needed). OpenAPI docs at ``/docs``
  (Swagger UI), its scripts served by the service itself from the fastapi-offline package, not from
  a CDN: the store network has no internet. No ``/redoc``: ReDoc's bundle loads its logo from a CDN.

With a token configured (``serve.token_env`` / ``serve.token_file``), every other request needs it
(401 otherwise, before the body is read); at most ``serve.max_in_flight`` predictions run at once
and the others get 503 with ``Retry-After`` at once (``agecheck.service.gate``).

Hostile input is expected: the body is read into memory only up to ``max_bytes`` (413 beyond),
only image content types are accepted (415), the pixel count is checked from the header before
decoding (413: decompression bombs), and every unreadable photo gets a 4xx JSON error
``{"error": code, "detail": text}``. Photos are biometric data: they are never written to disk,
and nothing about them (bytes, file names, ages) goes to the service's log. With
``serve.estimates_log`` set, each photo's estimates (never its pixels) get one line in that file
(:mod:`agecheck.till.estimates_log`), for the cashier audit.

The model is loaded once per worker process. Decoding and face detection run on a small thread
pool; the face crops of concurrent requests are gathered into batches for the age model by a
:class:`Batcher` that runs the model on its own thread.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from agecheck.config import DEFAULT_MODEL, DEFAULT_PARAMS, Params, ServeConfig, load_params, or_default
from agecheck.data.images import PhotoRejected, normalize_photo
from agecheck.model.age_model import AgeModel
from agecheck.service.access import load_tokens
from agecheck.service.batching import Batcher
from agecheck.service.gate import DOCS_ASSETS_URL, Gate
from agecheck.service.upload import IMAGE_TYPES, BadRequest, check_header, read_photo_upload
from agecheck.till.estimates_log import EstimatesLog, Sale, log_entry
from agecheck.till.pipeline import FaceCrops, FaceResult, Till, customer_index, photo_status

#: ``agecheck.service.app``: named after the module, so it moves with it and stays under ``agecheck``.
log = logging.getLogger(__name__)

#: HTTP status for each reason a photo is rejected (``agecheck.data.images.PhotoRejected``).
REJECTION_STATUS = {"too_large": 413, "empty_file": 400, "not_an_image": 415}


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
    customer: bool  # the customer's face: the largest in the photo
    p_under_legal: float | None  # P(age < legal_age) from the model's softmax; None without one
    p_under_threshold: float | None  # P(age < threshold)


class PredictOut(BaseModel):
    status: str  # ok | no_face
    faces: list[FaceOut]
    customer: int | None  # the index of the customer's face in faces; None without faces
    width: int
    height: int
    threshold: float
    legal_age: float
    milliseconds: float


class ErrorOut(BaseModel):
    error: str
    detail: Any = None


# --- the app ------------------------------------------------------------------------------------


def _error(status: int, error: str, detail: Any = None) -> JSONResponse:
    return JSONResponse(ErrorOut(error=error, detail=detail).model_dump(), status_code=status)


class TillService:
    """Decode + detect + crop on a thread pool, then the age model on batches gathered across requests."""

    def __init__(self, till: Till, serve: ServeConfig) -> None:
        self.till, self.serve = till, serve
        self.limiter = anyio.CapacityLimiter(serve.cpu_threads)
        self.batcher = Batcher(
            lambda crops: till.estimate(crops, serve.batch_size), serve.batch_size, serve.batch_wait_ms / 1000
        )
        self.log: EstimatesLog | None = None  # open while the app runs (see create_app's lifespan)

    def prepare(self, data: bytes, image_format: str, detect: bool) -> tuple[FaceCrops, tuple[int, int]]:
        """Decode (upright RGB) and cut out the faces; PhotoRejected for unusable photos."""
        check_header(data, image_format, self.serve)
        image = normalize_photo(data, self.serve).image
        return self.till.crops(image, detect), image.size

    async def __call__(self, request: Request, detect: bool, sale: Sale) -> PredictOut:
        """The answer to one upload, and its line in the estimates log: refused photos (with their
        error) and photos cut off by the gate's timeout included, so the audit can count them."""
        try:
            data, image_format = await read_photo_upload(request, self.serve)
            started = time.perf_counter()
            faces, (width, height) = await self.judge(data, image_format, detect)
        except BadRequest as err:
            self.write_log([], err.error, sale)
            raise
        except anyio.get_cancelled_exc_class():
            self.write_log([], "timeout", sale)
            raise
        policy = self.till.policy
        answer = PredictOut(
            status=photo_status(faces),
            faces=[FaceOut(**face.record()) for face in faces],
            customer=customer_index(faces),
            width=width,
            height=height,
            threshold=policy.threshold,
            legal_age=policy.legal_age,
            milliseconds=round((time.perf_counter() - started) * 1000, 1),
        )
        self.write_log(faces, answer.status, sale)
        return answer

    async def judge(
        self, data: bytes, image_format: str, detect: bool
    ) -> tuple[list[FaceResult], tuple[int, int]]:
        """The faces of a photo upload, judged, and its size; BadRequest for an unusable photo."""
        # Not abandoned when the gate's timeout cancels the request: a decode + detection already
        # running (bounded by the photo limits) finishes first, so the threads doing CPU work
        # never outnumber serve.cpu_threads, however many requests time out.
        try:
            crops, (width, height) = await anyio.to_thread.run_sync(
                self.prepare, data, image_format, detect, limiter=self.limiter
            )
        except PhotoRejected as err:
            raise BadRequest(
                REJECTION_STATUS.get(err.reason, 422), err.reason, err.detail or err.reason
            ) from None
        return self.till.judge(crops.boxes, await self.batcher.submit(crops.arrays)), (width, height)

    def write_log(self, faces: list[FaceResult], status: str, sale: Sale) -> None:
        """One line in the estimates log, if there is one: a small ``os.write``, fine on the event
        loop. A full disk costs the audit a line, not the till its answer (and is logged, without
        the line)."""
        if self.log is None:
            return
        try:
            self.log.append(log_entry(faces, status, self.till.policy, sale))
        except OSError as err:
            log.error("cannot write the estimates log %s: %s", self.log.path, err.strerror)


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
ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 413, 415, 422, 503)}
#: The ids a till may send with a photo: up to this many printable ASCII characters (else 422).
ID_MAX_LENGTH = 64
ID_PATTERN = rf"^[ -~]{{1,{ID_MAX_LENGTH}}}$"


def _id_query(what: str, alias: str | None = None) -> Any:
    """An optional id in the query, kept only in the estimates log."""
    return Query(
        None,
        alias=alias,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        description=f"{what}: up to {ID_MAX_LENGTH} printable ASCII characters; kept only in the "
        "estimates log (serve.estimates_log), with the estimates",
    )


# --- the docs, offline ----------------------------------------------------------------------------

#: Swagger UI's script, style and icon, from a package rather than FastAPI's CDN URLs.
DOCS_ASSETS = Path(str(files("fastapi_offline") / "static"))


def add_docs(app: FastAPI) -> None:
    """``/docs`` with its assets served by the app (FastAPI's recipe for self-hosting the docs'
    JavaScript and CSS); the app is made with ``docs_url=None, redoc_url=None``."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        prefix = str(request.scope.get("root_path", "")).rstrip("/")  # behind a proxy: its prefix
        return get_swagger_ui_html(
            openapi_url=f"{prefix}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{prefix}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{prefix}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{prefix}{DOCS_ASSETS_URL}/favicon.png",
        )


def create_app(till: Till, serve: ServeConfig, tokens: tuple[bytes, ...] = ()) -> FastAPI:
    """The FastAPI app around the till pipeline (a loaded model) and the ``serve`` params;
    with ``tokens``, every request but ``/health`` must present one of them."""
    service = TillService(till, serve)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(till.model.warm_up, serve.batch_size)
        service.batcher.start()
        # opened by each worker process itself (O_APPEND: whole lines from every worker)
        service.log = EstimatesLog.open(serve.estimates_log)
        yield
        await service.batcher.stop()
        if service.log is not None:
            service.log.close()
            service.log = None

    app = FastAPI(
        title="agecheck",
        description="Age estimation from till camera photos, with the Challenge-25 decision per face.",
        version=version("agecheck"),
        lifespan=lifespan,
        docs_url=None,  # add_docs: Swagger UI from the package's assets, not a CDN
        redoc_url=None,  # ReDoc's bundle would still fetch its logo from a CDN
    )
    app.add_middleware(Gate, tokens=tokens, serve=serve)
    add_docs(app)

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
            "model": till.model.info,
            "interval": "softmax" if till.model.has_distribution else "val_mae",
            "detect": till.detect.model_dump(),
            "align": till.align.model_dump(),
            "policy": till.policy.model_dump(),
            "limits": {
                "max_bytes": serve.max_bytes,
                "max_pixels": serve.max_pixels,
                "max_aspect": serve.max_aspect,
                "max_in_flight": serve.max_in_flight,
                "timeout_s": serve.timeout_s,
            },
            "token_required": bool(tokens),
            "accepted_types": sorted(IMAGE_TYPES),
        }

    @app.post(
        "/predict", response_model=PredictOut, responses=ERRORS, openapi_extra={"requestBody": PREDICT_BODY}
    )
    async def predict(
        request: Request,
        detect: bool = Query(True, description="false: the photo is one face (still aligned)"),
        sale_id: str | None = _id_query("the sale this photo belongs to"),
        till_id: str | None = _id_query("the till that sent the photo", alias="till"),
        cashier: str | None = _id_query("the cashier at that till (an id, not a name)"),
    ) -> PredictOut:
        """Ages and Challenge-25 decisions for the faces in a photo (raw body or form field ``photo``);
        the customer's face is the largest. The ids go only to the estimates log
        (``serve.estimates_log``), with the estimates, never the photo."""
        return await service(request, detect, Sale(sale_id, till_id, cashier))

    return app


# --- loading ------------------------------------------------------------------------------------

ENV_MODEL, ENV_PARAMS = "AGECHECK_MODEL", "AGECHECK_PARAMS"


def build_app(model_path: str | Path, params: Params) -> FastAPI:
    """The app for a saved model and the ``serve``, ``detect`` and ``policy`` params; the tokens
    are read from where ``serve`` names them."""
    tokens = load_tokens(params.serve)
    till = Till.from_params(AgeModel.load(model_path), params)
    return create_app(till, params.serve, tokens)


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (one per worker): model and params from the environment
    (required outside the project checkout, which holds the defaults)."""
    params = load_params(or_default(os.environ.get(ENV_PARAMS), DEFAULT_PARAMS, ENV_PARAMS))
    return build_app(or_default(os.environ.get(ENV_MODEL), DEFAULT_MODEL, ENV_MODEL), params)
