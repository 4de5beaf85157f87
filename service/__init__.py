"""Media3Watch backend: ingestion of playback-quality sessions into PostgreSQL.

Importing the package does nothing else: the serving main process prepares what its workers
share (service/metrics_dir.py).
"""
