"""Liveness and readiness probes."""

from sanic import Blueprint, HTTPResponse, Request, json

from service.errors import DatabaseUnavailable

bp = Blueprint("health")


@bp.get("/health")
async def liveness(request: Request) -> HTTPResponse:
    """The process answers; the database is not touched (see /health/ready)."""
    return json({"status": "healthy"})


@bp.get("/health/ready")
async def readiness(request: Request) -> HTTPResponse:
    """200 when PostgreSQL answers a query, 503 otherwise."""
    if not await request.app.ctx.store.ping():
        raise DatabaseUnavailable("database is not reachable")
    return json({"status": "ready"})
