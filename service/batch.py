"""Per-item results of POST /v1/sessions/batch."""

from __future__ import annotations

from typing import Any

from service.errors import ApiError


class BatchResults:
    """One result per item, in order: `stored`, `rejected` (the item is at fault: do not
    send it again) or `failed` (the server is: send it again)."""

    def __init__(self, items: list[Any]) -> None:
        self.items: list[dict[str, Any]] = [
            {"index": index, "sessionId": _claimed_id(item)} for index, item in enumerate(items)
        ]
        self.retryable: ApiError | None = None

    def stored(self, index: int) -> None:
        self.items[index]["status"] = "stored"

    def refused(self, index: int, error: Exception) -> None:
        at_fault = isinstance(error, ApiError) and error.status < 500
        self.items[index].update(status="rejected" if at_fault else "failed", error=_body(error))
        if not at_fault and self.retryable is None:
            # Any item to send again makes the answer a non-2xx, whatever the failure was.
            self.retryable = error if isinstance(error, ApiError) else _internal_error()

    def body(self) -> dict[str, Any]:
        counts = {status: 0 for status in ("stored", "rejected", "failed")}
        for item in self.items:
            counts[item["status"]] += 1
        status = "success" if counts["stored"] == len(self.items) else "partial"
        return {"status": status, **counts, "results": self.items}


def reason(error: Exception) -> str:
    """The sessions_rejected_total label for an item that was not stored."""
    return error.code.lower() if isinstance(error, ApiError) else "internal_error"


def _internal_error() -> ApiError:
    return ApiError("internal error; send the failed items again")


def _claimed_id(item: Any) -> str | None:
    claimed = item.get("sessionId") if isinstance(item, dict) else None
    usable = isinstance(claimed, str | int) and not isinstance(claimed, bool)
    return str(claimed) if usable else None


def _body(error: Exception) -> dict[str, Any]:
    if not isinstance(error, ApiError):
        return {"code": "INTERNAL_ERROR", "message": "internal error"}
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    return body
