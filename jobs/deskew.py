"""`ray job submit --working-dir . -- python jobs/deskew.py ...`: the same as `ocr deskew ...`."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["deskew", *sys.argv[1:]]))
