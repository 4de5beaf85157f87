"""Closed-loop load for the fault tests: clients posting unique sessions as phones do, each on
its own keep-alive connection, recording every answer (or its absence) with its send time,
so a test can compare 2xx answers against rows and ask what happened after a given moment."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.payloads import payload_a

# The SDK's read timeout: an answer slower than this is no answer for a phone.
SDK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Outcome:
    session_id: str
    sent_at: float  # time.monotonic() when the request was started
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    code: str | None = None  # the error code of an error answer
    failure: str | None = None  # the exception's class when there was no answer

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Load:
    """`clients` concurrent closed loops against `url`, in a thread of their own."""

    def __init__(self, url: str, api_key: str, clients: int = 16) -> None:
        self._url = url
        self._api_key = api_key
        self._clients = clients
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        self._thread.join(SDK_TIMEOUT_SECONDS + 5)
        assert not self._thread.is_alive(), "the load did not stop"
        return self.outcomes()

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def acknowledged(self, since: float = 0.0) -> int:
        """2xx answers to requests sent at or after `since`."""
        return sum(1 for o in self.outcomes() if o.acknowledged and o.sent_at >= since)

    def wait_for(
        self, condition: Callable[[], bool], what: str | Callable[[], str], timeout: float = 60
    ) -> None:
        """Until `condition()` holds (it reads a real signal: answers, rows, logs, processes);
        fail, naming `what`, if it has not after `timeout` seconds."""
        wait_until(condition, what, timeout, alive=self._thread.is_alive)

    def wait_for_acks(self, count: int, since: float = 0.0, timeout: float = 60) -> None:
        self.wait_for(
            lambda: self.acknowledged(since) >= count,
            lambda: f"{count} sessions acknowledged (answers: {self.summary(since)})",
            timeout,
        )

    def summary(self, since: float = 0.0) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for o in self.outcomes():
            if o.sent_at >= since:
                counts[str(o.status) + (f" {o.code}" if o.code else "") if o.status else o.failure]
        return dict(counts)

    async def _run(self) -> None:
        await asyncio.gather(*(self._client_loop() for _ in range(self._clients)))

    async def _client_loop(self) -> None:
        async with httpx.AsyncClient(
            base_url=self._url,
            headers={"X-API-Key": self._api_key},
            timeout=SDK_TIMEOUT_SECONDS,
            limits=httpx.Limits(max_connections=1),
        ) as client:
            while not self._stop.is_set():
                body = payload_a()
                sent_at = time.monotonic()
                try:
                    response = await client.post("/v1/sessions", json=body)
                except httpx.HTTPError as err:
                    self._record(
                        Outcome(body["sessionId"], sent_at, None, failure=type(err).__name__)
                    )
                    await asyncio.sleep(0.05)  # a phone would not retry at once either
                    continue
                code = None
                if response.status_code >= 400:
                    try:
                        code = response.json()["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        code = "<not the error shape>"
                self._record(Outcome(body["sessionId"], sent_at, response.status_code, code))

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcomes.append(outcome)


def wait_until(
    condition: Callable[[], bool],
    what: str | Callable[[], str],
    timeout: float = 60,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Poll a real signal until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if not alive() or time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"gave up waiting for {described}")
        time.sleep(0.05)
