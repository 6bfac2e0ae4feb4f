"""`ray job submit --working-dir . -- python jobs/ingest.py INPUT... --output OUT [options]`

The same function and flags as `ocr ingest`; connects to the cluster the job runs on.
The job runs in its own copy of --working-dir: give OUT (and data not shipped with the code)
as an absolute path or s3:// URI. With Ray's token authentication on, the `ray` CLI needs
RAY_AUTH_MODE=token (README.md, "`ray job submit`: the token")."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
