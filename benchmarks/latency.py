"""Latency, throughput and memory of the till code on this machine's CPU.

    python -m benchmarks.latency [--model models/age_model.keras [export/age_model.tflite ...]]
                                 [--runs 100] [--clients 4]

Prints:

1. in-process latency (p50/p95) of one 640 x 480 JPEG frame with one face: decode + BlazeFace
   detection + crop + age estimate (with interval), and its parts;
2. the same for a pre-cropped face (200 x 200 JPEG, no detection);
   (1. and 2. for each ``--model``, e.g. the Keras model and its LiteRT export, with file sizes)
3. the throughput of ``agecheck serve`` (started here on 127.0.0.1, stopped at the end) with
   ``--clients`` concurrent HTTP clients posting one-face frames, and their request latency;
4. peak memory (max RSS) of this process and of the server process.

The frames are generated (:func:`till_frame`: a cartoon face BlazeFace detects), so the script
needs no photos. Take figures on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from agecheck.config import DEFAULT_MODEL, DEFAULT_PARAMS, Params, load_params
from agecheck.data.images import normalize_photo
from agecheck.model.age_model import AgeModel
from agecheck.till.pipeline import Till
from tests.support.cartoon import till_frame
from tests.support.local_server import local_server


def jpeg_bytes(image: Image.Image) -> bytes:
    """``image`` as a JPEG file (quality 90), as a camera would send it."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# --- measurements --------------------------------------------------------------------------------


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):6.1f} ms   p95 {np.percentile(ms, 95):6.1f} ms   (n={len(ms)})"


def timed(fn, runs: int, warmup: int = 3) -> list[float]:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def in_process(model: Path, params: Params, runs: int) -> None:
    # the till of the service: detect and policy params, serve.interval, serve's photo limits
    till = Till.from_params(AgeModel.load(model), params)
    detector = till.detector()
    size = till.model.input_size
    frame = jpeg_bytes(till_frame([(250, 120, 180)]))
    face = jpeg_bytes(till_frame([(0, 0, 200)], 200, 200))
    limits = params.serve

    def decode(data: bytes):  # type: ignore[no-untyped-def]
        return normalize_photo(data, limits).image

    image = decode(frame)
    found = till.crops(image)
    assert len(found.boxes) == 1, f"expected one face in the benchmark frame, found {len(found.boxes)}"

    def whole_frame() -> None:
        crops = till.crops(decode(frame))
        till.estimate(crops.arrays)

    def pre_cropped() -> None:
        till.estimate(till.crops(decode(face), detect=False).arrays)

    print(
        f"\nmodel {model} ({model.stat().st_size / 2**20:.1f} MiB, {size} px), "
        f"detector BlazeFace {params.detect.model}, CPU cores {os.cpu_count()}"
    )
    print("\n1. one 640x480 JPEG frame with one face, in process")
    print(f"   decode + detect + crop + estimate   {percentiles(timed(whole_frame, runs))}")
    print(f"     decode (JPEG, EXIF, RGB)          {percentiles(timed(lambda: decode(frame), runs))}")
    print(
        f"     BlazeFace detection               {percentiles(timed(lambda: detector.detect(image), runs))}"
    )
    one_face = timed(lambda: till.estimate(found.arrays), runs)
    print(f"     age estimate (1 face)             {percentiles(one_face)}")
    print("\n2. one pre-cropped 200x200 JPEG face (no detection), in process")
    print(f"   decode + estimate                   {percentiles(timed(pre_cropped, runs))}")
    batch = np.repeat(found.arrays, 16, axis=0)
    per_face = [t / 16 for t in timed(lambda: till.estimate(batch), max(5, runs // 10))]
    print(f"   per face in a batch of 16           {percentiles(per_face)}")


def service(model: Path, params: Path, clients: int, requests: int, workers: int) -> None:
    import httpx

    with local_server(model, params, env={"AGECHECK_TOKEN": ""}, workers=workers) as server:
        url = server.url
        frames = [jpeg_bytes(till_frame([(250, 120, 180)], seed=i)) for i in range(8)]
        headers = {"Content-Type": "image/jpeg"}

        def client(index: int) -> list[float]:
            times = []
            with httpx.Client(base_url=url, timeout=60) as http:
                for i in range(requests):
                    start = time.perf_counter()
                    answer = http.post("/predict", content=frames[(index + i) % len(frames)], headers=headers)
                    times.append(time.perf_counter() - start)
                    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1, answer.text
            return times

        httpx.post(f"{url}/predict", content=frames[0], headers=headers, timeout=60)  # warm-up
        for n in sorted({1, clients}):
            start = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                times = [t for result in pool.map(client, range(n)) for t in result]
            elapsed = time.perf_counter() - start
            print(
                f"   {n} client(s) x {requests} frames: {len(times) / elapsed:5.1f} frames/s, "
                f"request {percentiles(times)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, nargs="+", default=[DEFAULT_MODEL], help="one or more (.keras, .tflite)"
    )
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=25, help="frames per client")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    args = parser.parse_args()
    params = load_params(args.params)
    for model in args.model:
        in_process(model, params, args.runs)
    print(f"\n3. agecheck serve on 127.0.0.1 ({args.workers} worker), {args.model[0]}, one-face frames")
    service(args.model[0], args.params, args.clients, args.requests, args.workers)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    server = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\n4. peak memory (max RSS): this process {own:.0f} MiB, service process {server:.0f} MiB")


if __name__ == "__main__":
    main()
