"""Trained classifiers served by name: ``llmeco serve --classifier NAME=REF``.

A :class:`ServedClassifier` wraps a sequence-classification checkpoint written by
``llmeco train classify`` (safetensors; its labels are in the checkpoint's config) and answers
``/v1/tasks/classify`` and ``/v1/tasks/sentiment`` for requests whose ``model`` names it.

The model runs on one worker thread per classifier, never on the event loop: requests queue
their texts, and the worker takes everything queued (up to ``max_batch`` texts) into one forward
pass, so concurrent requests share a batch instead of waiting for each other's passes. A request
cancelled before its batch starts is skipped.

With a caller's label set (a subset of the classifier's labels), the answer is the most
probable label *of that subset*, and the probabilities are renormalised over it — the same
contract as the prompted path, where the answer is always one of the caller's labels.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from llmeco.errors import ConfigError, EngineDead, InvalidRequest
from llmeco.settings import Settings
from llmeco.training.classify import Classifier, Prediction, load_classifier

#: Most texts one forward pass takes (requests queued together share it).
DEFAULT_MAX_BATCH = 32


@dataclass
class _Job:
    texts: list[str]
    future: concurrent.futures.Future[list[Prediction]]


class ServedClassifier:
    """A classifier with a batching worker thread; ``await predict(texts)`` from any loop."""

    def __init__(
        self,
        name: str,
        classifier: Classifier,
        *,
        source: str = "",
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.name = name
        self.classifier = classifier
        #: Where the checkpoint came from (a directory or a registry reference), for /v1/models.
        self.source = source
        self.max_batch = max_batch
        self.created = int(time.time())
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"classifier-{name}", daemon=True)
        self._thread.start()

    @property
    def labels(self) -> list[str]:
        """Every label the classifier can produce, in its head's order."""
        return list(self.classifier.labels)

    @property
    def max_length(self) -> int:
        """Tokens of a text the classifier reads; longer texts are truncated (as in training)."""
        return self.classifier.max_length

    def queued(self) -> int:
        """Requests waiting for the worker (the batch it is running not included)."""
        return self._queue.qsize()

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens the classifier reads of each text (blocking: call it off the event loop)."""
        return self.classifier.token_counts(texts)

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions for ``texts``, in order, computed on the worker thread.

        Raises:
            InvalidRequest: no texts, or an empty one. EngineDead: the classifier was closed
                (the server is shutting down).
        """
        if not texts or any(not t.strip() for t in texts):
            raise InvalidRequest("classification needs one or more non-empty texts", param="text")
        if self._closed:
            raise EngineDead(f"classifier {self.name} is shut down")
        future: concurrent.futures.Future[list[Prediction]] = concurrent.futures.Future()
        self._queue.put(_Job(list(texts), future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the worker after the batches already queued (idempotent)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _take(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` plus whatever else is queued, up to ``max_batch`` texts; and whether the
        stop marker was seen."""
        jobs, count = [first], len(first.texts)
        while count < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            count += len(job.texts)
        return jobs, False

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            jobs, stop = self._take(first)
            live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if not live:
                continue
            texts = [t for j in live for t in j.texts]
            try:
                predictions = self.classifier.predict(texts, batch_size=self.max_batch)
            except BaseException as exc:  # delivered to every waiting request
                for job in live:
                    job.future.set_exception(exc)
                continue
            start = 0
            for job in live:
                job.future.set_result(predictions[start : start + len(job.texts)])
                start += len(job.texts)


def restrict(prediction: Prediction, labels: Sequence[str] | None) -> Prediction:
    """``prediction`` limited to ``labels`` (probabilities renormalised over them); unchanged
    for None. The caller checks that every label is one the classifier has."""
    if labels is None:
        return prediction
    total = sum(prediction.scores[name] for name in labels)
    if total <= 0.0:  # every allowed label underflowed: fall back to equal odds
        scores = {name: 1.0 / len(labels) for name in labels}
    else:
        scores = {name: prediction.scores[name] / total for name in labels}
    best = max(labels, key=lambda name: scores[name])
    return Prediction(best, scores[best], scores)


def parse_classifier_option(value: str) -> tuple[str, str]:
    """``NAME=REF`` (``--classifier``) → ``(name, ref)``.

    Raises:
        ConfigError: no ``=``, or an empty name or reference.
    """
    name, sep, ref = value.partition("=")
    name, ref = name.strip(), ref.strip()
    if not sep or not name or not ref:
        raise ConfigError(
            f"--classifier {value!r}: expected NAME=REF, e.g. intents=runs/classify-intents "
            "or intents=intents@production"
        )
    return name, ref


def load_served_classifier(
    name: str, ref: str, settings: Settings, *, device: str = "cpu"
) -> ServedClassifier:
    """Load the checkpoint ``ref`` (a directory, or a registry ``NAME@alias`` / ``NAME:N``)
    and start its worker.

    Raises:
        NotFound / UnsafeFile / ConfigError: as :func:`llmeco.training.classify.load_classifier`
            (missing, pickled or not a classifier).
    """
    return ServedClassifier(name, load_classifier(ref, device, settings), source=ref)
