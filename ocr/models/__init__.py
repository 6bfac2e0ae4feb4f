"""Model families: recognition, detection, orientation. Import-safe (no I/O at import)."""
