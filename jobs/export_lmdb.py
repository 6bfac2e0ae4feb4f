"""`ray job submit --working-dir . -- python jobs/export_lmdb.py SHARDS OUT_LMDB [--split S]`"""

import sys

from ocr.cli import main

if __name__ == "__main__":
    sys.exit(main(["export-lmdb", *sys.argv[1:]]))
