"""OCR training and serving on Ray. Import-safe: no I/O, no argparse, no ray.init here."""

__version__ = "0.1.0"
