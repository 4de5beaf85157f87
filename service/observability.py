"""GET /metrics, and the middleware timing every request (registered on the app)."""

from __future__ import annotations

import time

from sanic import Blueprint, HTTPResponse, Request, raw

from service import metrics

bp = Blueprint("observability")


@bp.get("/metrics")
async def prometheus_metrics(request: Request) -> HTTPResponse:
    """Prometheus text format, summed over all worker processes."""
    body, content_type = metrics.exposition()
    return raw(body, content_type=content_type)


async def start_timer(request: Request) -> None:
    request.ctx.started = time.perf_counter()


async def observe_duration(request: Request, response: HTTPResponse) -> None:
    started = getattr(request.ctx, "started", None)
    if started is None:
        return
    route = "/" + request.route.path if request.route else "unmatched"
    metrics.REQUEST_DURATION.labels(route, request.method, str(response.status)).observe(
        time.perf_counter() - started
    )
