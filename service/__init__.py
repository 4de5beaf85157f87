"""Media3Watch backend: ingestion of playback-quality sessions into PostgreSQL."""

from service import metrics_dir

# Before anything imports prometheus_client (see service/metrics_dir.py).
metrics_dir.prepare()
