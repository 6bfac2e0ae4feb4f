"""`ray job submit --working-dir . -- python jobs/train.py ...`: the same as `ocr train ...`."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
