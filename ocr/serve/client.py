"""``ocr client IMAGE --url URL``: send an image to a running service, print what it read."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

ENDPOINTS = ("ocr", "recognize", "detect", "deskew")


class ClientError(RuntimeError):
    """The service answered with an error (4xx/5xx) or could not be reached."""


def post_image(url: str, data: bytes, endpoint: str = "ocr", token: str = "", timeout: float = 60.0) -> dict:
    """POST ``data`` as the raw body to ``url``/``endpoint``; the JSON answer."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint: expected one of {ENDPOINTS}, found {endpoint!r}")
    headers = {"Content-Type": "application/octet-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{url.rstrip('/')}/{endpoint}", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return json.loads(res.read())
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = body[:300]
        raise ClientError(f"{e.code} from {req.full_url}: {message}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ClientError(f"could not reach {req.full_url}: {e}") from None


def format_result(result: dict, endpoint: str) -> str:
    """The text a person wants to see: the lines read, or the angle / boxes."""
    if endpoint == "recognize":
        return result["text"]
    if endpoint == "deskew":
        return (f"angle {result['angle']:.2f} (skew {result.get('skew')}, "
                f"orientation {result.get('orientation')})")
    if endpoint == "detect":
        return "\n".join(f"{ln['box']}\t{ln['score']}" for ln in result["lines"])
    return "\n".join(ln["text"] for ln in result["lines"])


def run(image: str, url: str, endpoint: str = "ocr", as_json: bool = False, token: str | None = None) -> str:
    with open(image, "rb") as f:
        data = f.read()
    token = os.environ.get("OCR_SERVE_TOKEN", "") if token is None else token
    result = post_image(url, data, endpoint, token)
    return json.dumps(result, ensure_ascii=False, indent=1) if as_json else format_result(result, endpoint)
