# The ingestion service: slim Python, runs as an unprivileged user.
# Build: docker build -t media3watch-backend . (docker-compose.yml does it for you)
# Pinned to an exact release: a rebuild gets the same base until this line changes.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir service && touch service/__init__.py \
    && pip install . \
    && pip uninstall -y media3watch-backend \
    && rm -rf service

# The service reads queries/ and db/ next to service/: keep the source tree layout and
# install it editable.
COPY service ./service
COPY queries ./queries
COPY db ./db
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --no-create-home --home-dir /app m3w

USER m3w
EXPOSE 8080

# /health does not touch the database (GET /health/ready does).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]

CMD ["sh", "-c", "exec sanic service.app:create_app --factory --host=0.0.0.0 --port=${PORT:-8080} --workers=${M3W_WORKERS:-2} --no-motd"]
