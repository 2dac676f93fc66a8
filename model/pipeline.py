"""The scoring worker's signal stage as a pool of processes, so the VLM never waits on OCR.

RapidOCR costs 0.2-0.6 s an image on one core, the VLM a fraction of that per image on a GPU:
a worker that ran them one after the other would leave the GPU idle most of the time. With
the pipeline (`warden score --pipeline`, the default) the worker claims a batch, hands its
items to a `concurrent.futures.ProcessPoolExecutor` (spawn context; each process loads
RapidOCR and the NSFW model once, in its initializer) which reads the image from the blob
store by sha256, decodes it and computes the signals, while the main process scores the
batch before it with the one model it holds (one model per GPU). At most
`WARDEN_WORKER__MAX_IN_FLIGHT` batches are claimed and not yet recorded (backpressure: the
worker claims no more until the oldest is recorded; their leases are renewed meanwhile).

A pool process that dies (killed, out of memory, a decoder that crashes) breaks the pool:
a fresh pool replaces it, and each item whose signals were lost is computed again alone, in
a separate one-process pool, so an item that kills its process every time is the only one
charged (`score_failed`, as for an image that does not decode) and none is lost.

OCR runs on the GPU (onnxruntime's CUDA provider for RapidOCR's models) when
`WARDEN_WORKER__OCR_DEVICE` is "cuda", or "auto" and both onnxruntime and torch see CUDA.

Run: warden score [--pipeline/--no-pipeline] [--signal-procs N]
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from storage.errors import WardenError

if TYPE_CHECKING:
    from PIL.Image import Image

    from model.signals import Signals
    from storage.blobs import BlobStore

log = logging.getLogger(__name__)

OCRDevice = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class PreparedItem:
    """What the signal stage made of one item: its decoded views (one per medium, in order)
    and each one's signals, or why not."""

    item_id: int
    images: tuple[Image, ...] = ()
    media_signals: tuple[Signals, ...] = ()
    error: str | None = None  # "image: ..." (does not decode) or "signals: ..." (process died)

    @property
    def image(self) -> Image | None:
        """The cover (first medium)."""
        return self.images[0] if self.images else None

    @property
    def signals(self) -> Signals | None:
        """The cover's signals (the item's own for N = 1)."""
        return self.media_signals[0] if self.media_signals else None


# --- inside a pool process -------------------------------------------------------------------

_store: BlobStore | None = None
_ocr = True
_nsfw = True
_ocr_engine = "auto"


def init_signal_process(
    blobs_path: str, ocr: bool, nsfw: bool, ocr_cuda: bool, threads: int, ocr_engine: str = "auto"
) -> None:
    """Pool initializer: open the blob store and load the detectors once per process."""
    global _store, _ocr, _nsfw, _ocr_engine
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the main process
    # drains its in-flight batches and needs these processes to finish them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent()
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    from model import signals
    from storage.blobs import BlobStore

    # Several processes share the cores: each gets its share of onnxruntime threads (the
    # default is one per core, each), and CUDA when asked. This process's copy only.
    signals.OCR_PARAMS["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    if ocr_cuda:
        signals.OCR_PARAMS["EngineConfig.onnxruntime.use_cuda"] = True
    _store = BlobStore(Path(blobs_path))
    _ocr, _nsfw, _ocr_engine = ocr, nsfw, ocr_engine
    if ocr:
        signals.ocr_engine()
    if nsfw:
        signals.nsfw_classifier()


def _exit_with_parent() -> None:
    """End this process when the worker that started it ends, however it ends: a worker
    killed with SIGKILL cannot shut its pool down, and its processes would wait forever."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's sentinel closes: it has exited
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def signals_for(item_id: int, sha256: str | tuple[str, ...]) -> PreparedItem:
    """Decode the stored view(s) `sha256` (one per medium) and compute each one's signals
    (in a pool process)."""
    from model.media import decode_and_signal

    assert _store is not None, "init_signal_process has not run in this process"
    shas = (sha256,) if isinstance(sha256, str) else tuple(sha256)
    try:
        images, signals = decode_and_signal(_store, shas, ocr=_ocr, nsfw=_nsfw, engine=_ocr_engine)
    except Exception as exc:  # noqa: BLE001 - a bad file is charged to its item, not the pool
        return PreparedItem(item_id, error=f"image: {type(exc).__name__}: {exc}")
    return PreparedItem(item_id, tuple(images), tuple(signals))


def _ready() -> int:
    return os.getpid()


# --- in the worker's main process -----------------------------------------------------------


def ocr_on_gpu(device: OCRDevice) -> bool:
    """Whether OCR runs on CUDA: "auto" when onnxruntime has its CUDA provider and torch sees
    a GPU; "cuda" insists (WardenError when it cannot); "cpu" never."""
    if device == "cpu":
        return False
    import onnxruntime

    has_provider = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    try:
        import torch

        has_gpu = bool(torch.cuda.is_available())
    except ImportError:
        has_gpu = False
    if device == "cuda" and not (has_provider and has_gpu):
        raise WardenError(
            "WARDEN_WORKER__OCR_DEVICE=cuda, but "
            + ("torch sees no GPU" if has_provider else "onnxruntime has no CUDAExecutionProvider")
            + " (install onnxruntime-gpu on a CUDA machine, or use auto/cpu)"
        )
    return has_provider and has_gpu


def default_signal_procs() -> int:
    """One process per core but one (the VLM's process needs a core too); at least one."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass
class _Job:
    item_id: int
    sha256: str | tuple[str, ...]
    future: Future[PreparedItem]
    generation: int


class SignalPool:
    """The pool of signal processes; `submit` an item, `result` its `PreparedItem`.

    `result` never raises for a pool process that died: the pool is replaced and the item's
    signals are computed again in isolation (see the module docstring)."""

    def __init__(
        self,
        blobs_path: Path,
        *,
        procs: int,
        ocr: bool,
        nsfw: bool,
        ocr_device: OCRDevice = "auto",
        ocr_engine: str = "auto",
    ) -> None:
        if procs < 1:
            raise WardenError("the signal pool needs at least one process (--signal-procs)")
        self.procs = procs
        cuda = ocr and ocr_on_gpu(ocr_device)
        # One core's share is left to the VLM in the main process.
        threads = max(1, (os.cpu_count() or 1) // (procs + 1))
        self._initargs = (str(blobs_path), ocr, nsfw, cuda, threads, ocr_engine)
        self._context = multiprocessing.get_context("spawn")
        self._generation = 0
        self._pool = self._new_pool(procs)
        self._isolation: ProcessPoolExecutor | None = None
        self._ready: list[Future[int]] | None = None
        self.restarts = 0  # pools replaced after a process died
        log.info("signal pool: %d process(es), OCR on %s", procs, "cuda" if cuda else "cpu")

    def _new_pool(self, procs: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=procs,
            mp_context=self._context,
            initializer=init_signal_process,
            initargs=self._initargs,
        )

    def start(self, *, wait: bool = True) -> list[int]:
        """Start every process loading its detectors; with `wait`, wait until each has and
        return their pids (`wait=False` first lets them load while the caller loads its model).

        WardenError when they cannot start: then no item is claimed (and none is charged a
        failure for a broken environment)."""
        if self._ready is None:
            self._ready = [self._pool.submit(_ready) for _ in range(self.procs)]
        if not wait:
            return []
        try:
            return [f.result() for f in self._ready]
        except BrokenProcessPool as exc:
            raise WardenError(
                f"the signal processes could not start ({exc}); see the log above, "
                "or run with --no-pipeline"
            ) from exc

    def submit(self, item_id: int, sha256: str | tuple[str, ...]) -> _Job:
        try:
            future = self._pool.submit(signals_for, item_id, sha256)
        except BrokenProcessPool:
            self._replace(self._generation)
            future = self._pool.submit(signals_for, item_id, sha256)
        return _Job(item_id, sha256, future, self._generation)

    def result(self, job: _Job) -> PreparedItem:
        try:
            return job.future.result()
        except BrokenProcessPool:
            self._replace(job.generation)
            return self._isolated(job)
        except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
            return PreparedItem(job.item_id, error=f"signals: {type(exc).__name__}: {exc}")

    def _replace(self, generation: int) -> None:
        """A process of pool `generation` died: replace that pool (once)."""
        if generation != self._generation:
            return
        log.warning("a signal process died; starting a fresh pool")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._generation += 1
        self.restarts += 1
        self._pool = self._new_pool(self.procs)

    def _isolated(self, job: _Job) -> PreparedItem:
        """The item's signals computed alone in a one-process pool: if that dies, this item
        killed it."""
        if self._isolation is None:
            self._isolation = self._new_pool(1)
        try:
            return self._isolation.submit(signals_for, job.item_id, job.sha256).result()
        except BrokenProcessPool:
            self._isolation.shutdown(wait=False, cancel_futures=True)
            self._isolation = None
            return PreparedItem(job.item_id, error="signals: the signal process died on this item")
        except Exception as exc:  # noqa: BLE001
            return PreparedItem(job.item_id, error=f"signals: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        for pool in (self._pool, self._isolation):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SignalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Called with the number of batches in flight (claimed, not yet recorded) after each claim.
InFlightHook = Callable[[int], None]
