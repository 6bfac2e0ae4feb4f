"""`ray job submit --working-dir . -- python jobs/synth.py --output OUT --text digits:1-8 --count N`

The same function and flags as `ocr synth`; connects to the cluster the job runs on.
The job runs in its own copy of --working-dir: give OUT (and data not shipped with the code)
as an absolute path or s3:// URI. With Ray's token authentication on, the `ray` CLI needs
RAY_AUTH_MODE=token (README.md, "`ray job submit`: the token")."""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
