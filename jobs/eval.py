"""`ray job submit --working-dir . -- python jobs/eval.py ...`: the same as `ocr eval ...`."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
