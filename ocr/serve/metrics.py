"""Our Prometheus metrics, beside Serve's own (``ray_serve_*``), on Ray's metrics endpoint
(every node's ``metrics_export_port``; ``ray start --metrics-export-port 8080`` fixes it):

    ray_ocr_requests_total{route, status}      requests answered, by route and HTTP status
    ray_ocr_request_latency_ms{route}          end-to-end latency in the ingress
    ray_ocr_stage_latency_ms{stage}            decode, deskew, detect, recognize
"""

from __future__ import annotations

from functools import lru_cache

from ray.serve.metrics import Counter, Histogram

_ROUTES = ("/", "/healthz", "/ocr", "/recognize", "/detect", "/deskew", "/docs", "/openapi.json")
_BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


@lru_cache(maxsize=1)
def _metrics():
    return (Counter("ocr_requests", description="OCR requests answered, by route and status",
                    tag_keys=("route", "status")),
            Histogram("ocr_request_latency_ms", description="end-to-end latency in the ingress (ms)",
                      boundaries=_BOUNDS_MS, tag_keys=("route",)),
            Histogram("ocr_stage_latency_ms", description="latency of each stage of the graph (ms)",
                      boundaries=_BOUNDS_MS, tag_keys=("stage",)))


def record_request(path: str, status: int, ms: float) -> None:
    route = path if path in _ROUTES else "other"   # bounded label values
    requests, latency, _ = _metrics()
    requests.inc(tags={"route": route, "status": str(status)})
    latency.observe(ms, tags={"route": route})


def record_stage(stage: str, ms: float) -> None:
    _metrics()[2].observe(ms, tags={"stage": stage})
