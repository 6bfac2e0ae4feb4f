"""`ray job submit --working-dir . -- python jobs/export.py ...`: the same as `ocr export ...`."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
