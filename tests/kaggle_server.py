"""A fake Kaggle API on ``http://localhost`` (port 80), spoken to by the real ``kaggle`` client.

With ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` the client (kaggle 2.x with kagglesdk) sends every
call as a JSON POST to ``http://localhost/api/v1/competitions.CompetitionApiService/<Method>``,
authenticated with HTTP basic auth (username, key). This server answers the methods kfw uses,
with the JSON field names of kagglesdk's ``to_dict`` / ``from_dict``:

====================== =========================================================================
client call            requests and answers
====================== =========================================================================
download files         ``DownloadDataFiles {competitionName}`` -> 302 to ``/storage/<slug>.zip``
                       (the client names the file after the redirect's extension); ``GET`` of
                       it -> the zip, with Content-Length and Last-Modified
submit                 ``StartSubmissionUpload {competitionName, fileName, contentLength,
                       lastModifiedEpochSeconds}`` -> ``{token, createUrl}``; ``PUT createUrl``
                       with the file -> 200; ``CreateSubmission {competitionName,
                       blobFileTokens, submissionDescription}`` -> ``{message, ref}``, the
                       submission scored at once against the hidden solution
list submissions       ``ListSubmissions {competitionName, sortBy, group, page, pageSize}`` ->
                       ``{submissions: [ApiSubmission...], nextPageToken}``, newest first;
                       ``privateScore`` only once the competition has ended
====================== =========================================================================

Errors come back as Kaggle sends them, JSON ``{"code": 4xx, "message": ...}`` (the client raises
``HTTPError(message)``): 401 for wrong credentials, 404 for an unknown competition, 403 for
rules not accepted, 400 for an unknown upload token or the daily limit.

The server runs in a daemon thread and stops when the ``with`` block ends. Port 80 needs root;
:class:`FakeKaggle` raises ``OSError`` when it cannot bind (the tests skip outside CI). While
another test holds the port (an xdist worker that got another test of the group), it waits up
to ``wait`` seconds for it.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd

SERVICE = "/api/v1/competitions.CompetitionApiService/"


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


@dataclass
class Competition:
    """One competition of the fake Kaggle.

    ``files`` are zipped for the download; ``solution`` (``<id>, <target>, Usage``) scores the
    submissions with ``metric(y_true, y_pred)`` on the raw column values.
    """

    slug: str
    files: dict[str, bytes]
    solution: pd.DataFrame
    id: str
    target: str
    metric: Callable[[np.ndarray, np.ndarray], float] = accuracy
    ended: bool = False
    rules_accepted: bool = True
    daily_limit: int | None = None
    submissions: list[dict[str, Any]] = field(default_factory=list)

    def zip(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, content in self.files.items():
                zf.writestr(name, content)
        return buffer.getvalue()

    def score(self, content: bytes) -> tuple[float, float]:
        """(public, private), as Kaggle would: raises ValueError on a file it cannot score."""
        sub = pd.read_csv(io.BytesIO(content))
        if list(sub.columns) != [self.id, self.target]:
            raise ValueError(f"expected columns {self.id}, {self.target}")
        merged = self.solution.merge(sub, on=self.id, how="left", suffixes=("", "_sub"))
        if merged[f"{self.target}_sub"].isna().any():
            raise ValueError(f"the submission lacks {self.id} values of the solution")
        parts = []
        for usage in ("Public", "Private"):
            rows = merged[merged["Usage"] == usage]
            parts.append(
                self.metric(rows[self.target].to_numpy(), rows[f"{self.target}_sub"].to_numpy())
            )
        return parts[0], parts[1]


class FakeKaggle:
    """The fake API server; a context manager (the thread stops when the block ends).

    Attributes
    ----------
    competitions : dict
        Slug -> :class:`Competition`.
    uploads : dict
        Upload token -> the bytes PUT to it.
    calls : list of str
        ``"POST Method"`` / ``"GET /path"`` / ``"PUT /upload"`` in the order received.
    fail_uploads : bool
        Answer every upload PUT with 500 (the client then gives up: no submission is made).
    wait : float
        Seconds to wait for the port while another server holds it.
    """

    def __init__(
        self, username: str, key: str, host: str = "127.0.0.1", port: int = 80, wait: float = 90.0
    ) -> None:
        self.wait = wait
        self.auth = "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()
        self.host, self.port = host, port
        self.competitions: dict[str, Competition] = {}
        self.uploads: dict[str, bytes] = {}
        self._names: dict[str, str] = {}
        self.calls: list[str] = []
        self.fail_uploads = False
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return "http://localhost" + ("" if self.port == 80 else f":{self.port}")

    def add(self, competition: Competition) -> Competition:
        self.competitions[competition.slug] = competition
        return competition

    def __enter__(self) -> FakeKaggle:
        # the port is fixed: wait while another test (another xdist worker) holds it
        deadline = time.monotonic() + self.wait
        while True:
            try:
                self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._server is not None:
                self._server.shutdown()
        finally:
            if self._server is not None:
                self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    # ---- the API methods: request dict -> (status, response dict) ----------------------------

    def _competition(self, request: dict[str, Any]) -> Competition:
        slug = request.get("competitionName", "")
        if slug not in self.competitions:
            raise ApiError(404, f"Competition '{slug}' not found")
        comp = self.competitions[slug]
        if not comp.rules_accepted:
            raise ApiError(403, "You must accept this competition's rules before you can continue")
        return comp

    def DownloadDataFiles(self, request: dict[str, Any]) -> Redirect:
        comp = self._competition(request)
        return Redirect(f"/storage/{comp.slug}/{comp.slug}.zip")

    def StartSubmissionUpload(self, request: dict[str, Any]) -> dict[str, Any]:
        self._competition(request)
        token = uuid.uuid4().hex
        self._names[token] = request.get("fileName", "")
        return {"token": token, "createUrl": f"{self.base}/upload/{token}"}

    def CreateSubmission(self, request: dict[str, Any]) -> dict[str, Any]:
        comp = self._competition(request)
        token = request.get("blobFileTokens", "")
        if token not in self.uploads:
            raise ApiError(400, "Invalid blob file token")
        now = datetime.now(UTC)
        today = [s for s in comp.submissions if s["_day"] == now.date()]
        if comp.daily_limit is not None and len(today) >= comp.daily_limit:
            raise ApiError(400, "Submission limit reached: try again tomorrow")
        content = self.uploads[token]
        entry: dict[str, Any] = {
            "ref": 41_000_000 + sum(len(c.submissions) for c in self.competitions.values()) + 1,
            "totalBytes": len(content),
            "date": now.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z",
            "description": request.get("submissionDescription", ""),
            "fileName": self._names.get(token, ""),
            "status": "COMPLETE",
            "submittedBy": "someone",
            "teamName": "someone",
            "_day": now.date(),
        }
        try:
            entry["_public"], entry["_private"] = comp.score(content)
        except (ValueError, KeyError, pd.errors.ParserError) as exc:
            entry.update(status="ERROR", errorDescription=str(exc))
        comp.submissions.append(entry)
        return {"message": "Successfully submitted to " + comp.slug, "ref": entry["ref"]}

    def ListSubmissions(self, request: dict[str, Any]) -> dict[str, Any]:
        comp = self._competition(request)
        size = int(request.get("pageSize") or 20)
        page = int(request.get("page") or 1)
        newest = sorted(comp.submissions, key=lambda s: s["ref"], reverse=True)
        shown = []
        for s in newest[(page - 1) * size : page * size]:
            item = {k: v for k, v in s.items() if not k.startswith("_")}
            if s["status"] == "COMPLETE":
                item["publicScore"] = f"{s['_public']:.5f}"
                if comp.ended:
                    item["privateScore"] = f"{s['_private']:.5f}"
            shown.append(item)
        return {"submissions": shown, "nextPageToken": ""}


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Redirect:
    location: str


def _handler(kaggle: FakeKaggle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what a test prints

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, code: int, body: bytes, kind: str, **headers: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, data: dict[str, Any]) -> None:
            self._send(code, json.dumps(data).encode(), "application/json")

        def do_POST(self) -> None:
            body = self._body()
            if not self.path.startswith(SERVICE):
                return self._json(404, {"code": 404, "message": f"no route {self.path}"})
            method = self.path[len(SERVICE) :]
            with kaggle._lock:
                kaggle.calls.append(f"POST {method}")
            if self.headers.get("Authorization") != kaggle.auth:
                return self._json(401, {"code": 401, "message": "Unauthenticated"})
            handler = getattr(kaggle, method, None)
            if handler is None or not method[:1].isupper():
                return self._json(404, {"code": 404, "message": f"no method {method}"})
            try:
                with kaggle._lock:
                    result = handler(json.loads(body or b"{}"))
            except ApiError as exc:
                return self._json(exc.code, {"code": exc.code, "message": str(exc)})
            if isinstance(result, Redirect):
                self.send_response(302)
                self.send_header("Location", result.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._json(200, result)

        def do_GET(self) -> None:
            with kaggle._lock:
                kaggle.calls.append(f"GET {self.path}")
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "storage" and parts[1] in kaggle.competitions:
                content = kaggle.competitions[parts[1]].zip()
                modified = formatdate(usegmt=True)  # "Mon, 01 Jun 2024 12:00:00 GMT"
                return self._send(200, content, "application/zip", Last_Modified=modified)
            return self._json(404, {"code": 404, "message": f"no file {self.path}"})

        def do_PUT(self) -> None:
            body = self._body()
            with kaggle._lock:
                kaggle.calls.append("PUT /upload")
            token = self.path.rsplit("/", 1)[-1]
            if kaggle.fail_uploads or not self.path.startswith("/upload/"):
                return self._json(500, {"code": 500, "message": "upload failed"})
            with kaggle._lock:
                kaggle.uploads[token] = body
            return self._json(200, {})

    return Handler
