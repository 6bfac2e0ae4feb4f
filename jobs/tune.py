"""`ray job submit --working-dir . -- python jobs/tune.py --config train.yaml --space space.yaml`:
the same as `ocr tune ...`."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
