"""Liveness and readiness probes."""

from sanic import Blueprint, HTTPResponse, Request, json

from service.errors import DatabaseUnavailable

bp = Blueprint("health")

# Probes (Kubernetes' timeoutSeconds defaults to 1) give up after about a second: the answer
# must come before that, whatever PostgreSQL does, so the probe has a short timeout of its own.
READY_PROBE_SECONDS = 0.5


@bp.route("/health", methods=["GET", "HEAD"])  # HEAD: same status and headers, no body
async def liveness(request: Request) -> HTTPResponse:
    """The process answers; the database is not touched (see /health/ready)."""
    return json({"status": "healthy"})


@bp.get("/health/ready")
async def readiness(request: Request) -> HTTPResponse:
    """200 when PostgreSQL answers a query within READY_PROBE_SECONDS, 503 otherwise."""
    if not await request.app.ctx.store.ping(READY_PROBE_SECONDS):
        raise DatabaseUnavailable("database is not reachable")
    return json({"status": "ready"})
