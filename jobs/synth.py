"""`ray job submit --working-dir . -- python jobs/synth.py --output OUT --text digits:1-8 --count N`

The same function and flags as `ocr synth`; connects to the cluster the job runs on."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
