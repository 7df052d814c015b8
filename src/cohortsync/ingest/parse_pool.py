"""Decoding and validating /import bodies in helper processes, so one API process uses every core.

Validation is CPU-bound Python, so threads cannot run it in parallel; a small process pool can.
The API process keeps what must be serial: authentication, identity links and the SQLite writer.
With ``processes=0`` (or a broken pool) batches are prepared in a thread instead.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple

import anyio.to_thread

from cohortsync.domain.identity import IdentityMode
from cohortsync.ingest.body import decode_body, reads_as_json, unpack
from cohortsync.ingest.decoders import events_from_json
from cohortsync.ingest.events import PreparedBatch, prepare_decoded, prepare_each

log = logging.getLogger(__name__)


class ImportBody(NamedTuple):
    """An /import request body and what validating it needs (sent to a helper process)."""

    raw: bytes
    content_type: str
    content_encoding: str
    project_id: int
    mode: IdentityMode
    now_ms: int
    oldest_ms: int


def prepare_body(body: ImportBody) -> PreparedBatch:
    """Decode a request body and validate its events (runs in a helper process): a JSON body
    by the compiled decoder when it takes it, else record by record."""
    document = unpack(body.raw, body.content_encoding)
    if reads_as_json(body.content_type, document):
        decoded = events_from_json(document)
        if decoded is not None:
            batch = prepare_decoded(
                decoded,
                range(len(decoded)),
                body.project_id,
                body.mode,
                now_ms=body.now_ms,
                oldest_ms=body.oldest_ms,
            )
            if batch is not None:
                return batch
    records = decode_body(document, body.content_type, "").records  # unpacked already
    return prepare_each(
        list(enumerate(records)),
        body.project_id,
        body.mode,
        now_ms=body.now_ms,
        oldest_ms=body.oldest_ms,
    )


def _exit_with_parent(parent_pid: int) -> None:
    """Helper-process initializer: exit as soon as the API process is gone (even if killed)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def default_processes() -> int:
    """One helper per core beyond the first (none on a single core)."""
    return max((os.cpu_count() or 1) - 1, 0)


class ParsePool:
    """A lazily started pool of helper processes that prepare /import batches."""

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor | None:
        if self._processes <= 0:
            return None
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self._processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._executor

    async def prepare_async(self, body: ImportBody) -> PreparedBatch:
        """Prepare one body in a helper process (in a thread when there is no pool), awaited
        without occupying a thread, so helpers prepare the next bodies while the writer stores
        the previous ones."""
        pool = self._pool()
        if pool is not None:
            try:
                return await asyncio.wrap_future(pool.submit(prepare_body, body))
            except BrokenProcessPool:
                log.warning("ingestion helper process died; preparing this batch in a thread")
                with self._lock:
                    self._executor = None
        return await anyio.to_thread.run_sync(prepare_body, body)

    def close(self) -> None:
        """Stop the helper processes."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
