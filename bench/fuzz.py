"""API fuzzing: `make fuzz` (or `python -m bench.fuzz`); longer than `make test`'s bounded
property tests (tests/test_properties.py).

Starts an embedded PostgreSQL and the service with 2 workers, then runs schemathesis against
the OpenAPI description the service serves (GET /docs/openapi.json), with the API key, for
`--max-examples` generated requests per operation (default 1,000), positive and negative
(bodies that break the schema). The check that matters most is `not_a_server_error`: no
input may get a 5xx. Extra arguments after `--` go to `st run` unchanged, e.g.
`make fuzz FUZZ_ARGS="--max-examples 5000 -- --seed 42"`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.database import migrated_postgres
from bench.ingest import API_KEY, start_server

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=1000, help="per API operation")
    parser.add_argument("--workers", type=int, default=2, help="service workers")
    parser.add_argument("st_args", nargs="*", help="more `st run` arguments (after --)")
    args = parser.parse_args()

    st = Path(sys.executable).with_name("st")
    with (
        tempfile.TemporaryDirectory(prefix="m3w-fuzz-") as scratch,
        migrated_postgres(Path(scratch), "fuzz") as database,
    ):
        server = start_server(database.url, args.workers, Path(scratch) / "server.log")
        try:
            command = [
                str(st),
                "run",
                server.url + "/docs/openapi.json",
                "--header",
                f"X-API-Key: {API_KEY}",
                "--checks",
                CHECKS,
                "--max-examples",
                str(args.max_examples),
                "--phases",
                "examples,coverage,fuzzing",
                "--mode",
                "all",
                *args.st_args,
            ]
            print("$ " + " ".join(command), flush=True)
            code = subprocess.run(command, check=False).returncode
        finally:
            server.terminate()
        errors = [
            line for line in server.log().splitlines() if "Traceback" in line or "ERROR" in line
        ]
    shown = ":\n" + "\n".join(errors[:20]) if errors else ""
    print(f"\nserver log: {len(errors)} error lines{shown}")
    return code or (1 if errors else 0)


if __name__ == "__main__":
    sys.exit(main())
