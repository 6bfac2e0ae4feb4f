"""Serving: the deskew -> ROI detection -> recognition graph on Ray Serve, over HTTP.

    from ocr.serve import deploy
    url = deploy(ServeConfig(recognizer="runs/rec", detector="runs/roi"))   # http://127.0.0.1:8000

Stages (``stages.py``) are plain classes; ``deployments.py`` wraps each in a Serve deployment
whose checkpoint lives in ``user_config``; ``app.py`` is the FastAPI ingress and the builder
that serve_config.yaml names; ``uploads.py`` holds the upload checks.
"""

from __future__ import annotations

APP_NAME = "ocr"


def deploy(cfg, name: str = APP_NAME, route_prefix: str = "/", blocking: bool = False,
           quiet: bool = False) -> str:
    """Start Serve on ``cfg.host:cfg.port`` (in the connected Ray, or a local one) and run the
    graph; returns the base URL once every replica is up. ``quiet``: warnings only, no access log."""
    from ray import serve
    from ray.serve.schema import LoggingConfig

    from ocr.runtime import ensure_ray
    from ocr.serve.app import build_app

    application = build_app(cfg)            # refuses bad checkpoints before Serve starts
    ensure_ray(dashboard=True)
    logs = LoggingConfig(log_level="WARNING", enable_access_log=False) if quiet else None
    serve.start(http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.request_timeout_s},
                logging_config=logs)
    serve.run(application, name=name, route_prefix=route_prefix, blocking=blocking, logging_config=logs)
    return f"http://{cfg.host}:{cfg.port}{route_prefix.rstrip('/')}"
