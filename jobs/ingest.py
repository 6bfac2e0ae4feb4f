"""`ray job submit --working-dir . -- python jobs/ingest.py INPUT... --output OUT [options]`

The same function and flags as `ocr ingest`; connects to the cluster the job runs on."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
