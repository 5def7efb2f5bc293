"""A tiny blocking JSON client for the target (http.client, keep-alive), for tests, benchmarks and scripts."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit


class TargetClient:
    """One keep-alive connection to a target; `call` returns (status, decoded JSON body)."""

    def __init__(self, url: str, token: str | bytes | None = None, timeout_s: float = 10.0):
        parts = urlsplit(url)
        self.host, self.port, self.timeout_s, self.token = parts.hostname, parts.port, timeout_s, token
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        hdrs = {"Content-Type": "application/json"}
        if isinstance(self.token, bytes):  # raw bytes, so a test can send a token that is not UTF-8
            hdrs["Authorization"] = b"Bearer " + self.token
        elif self.token:
            hdrs["Authorization"] = f"Bearer {self.token}".encode("utf-8")
        hdrs.update(headers or {})
        try:
            self.conn.request(method, path, body=body, headers=hdrs)
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # a broken keep-alive connection is reopened on the next call
            raise

    def call(self, method: str, path: str, body: dict | None = None, **kw) -> tuple[int, dict]:
        status, data = self.raw(method, path, None if body is None else json.dumps(body).encode(), **kw)
        return status, json.loads(data) if data else {}

    def as_user(self, token: str) -> "TargetClient":
        return TargetClient(f"http://{self.host}:{self.port}", token, self.timeout_s)

    def register(self, name: str) -> tuple[int, "TargetClient"]:
        status, body = self.call("POST", "/users", {"name": name})
        if status != 201:
            raise RuntimeError(f"POST /users answered {status}: {body}")
        return body["user_id"], self.as_user(body["token"])

    def close(self) -> None:
        self.conn.close()
