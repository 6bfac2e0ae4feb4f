"""Serving: the deskew -> ROI detection -> recognition graph on Ray Serve, over HTTP.

    from ocr.serve.deploy import deploy
    url = deploy(ServeConfig(recognizer="runs/rec", detector="runs/roi"))   # http://127.0.0.1:8000

Stages (``stages.py``) are plain classes; ``deployments.py`` wraps each in a Serve deployment
whose checkpoint lives in ``user_config``; ``app.py`` is the FastAPI ingress and the builder
that serve_config.yaml names; ``deploy.py`` starts Serve on a free port and runs the app;
``uploads.py`` holds the upload checks.
"""
