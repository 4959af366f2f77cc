"""A small ClickHouse HTTP front for chdb: one chdb data directory served to clickhouse-connect's HTTP client.

chdb runs the real ClickHouse engine in-process, one process per data directory, with no server mode. This
front owns that process, so several processes can share one ClickHouse, and a test can stop the "server"
(kill the process) and start it again on the same directory and port. It keeps one chdb connection open,
guarded by a lock (one statement at a time), and answers the part of ClickHouse's HTTP interface that
``clickhouse_connect.get_client(host="127.0.0.1", port=P)`` uses:

* ``GET /ping`` (and a bare ``GET /``) answers ``Ok.``;
* the statement comes in the ``query`` URL parameter, the body, or both (joined by a newline, as ClickHouse
  does), or in ``multipart/form-data`` fields; ``param_NAME`` binds ``{NAME:Type}`` server-side;
* ``database`` selects the database; the other URL parameters that are not HTTP transport parameters are
  settings, applied with ``SET`` before the statement (and reset once a request stops sending them);
* the output format is the statement's ``FORMAT`` clause (clickhouse-connect asks for ``Native``), else
  ``TabSeparated``; answers are never compressed (``Accept-Encoding`` is advisory, clients accept identity);
* ``INSERT INTO t (...) FORMAT F`` followed by data (clickhouse-connect sends ``Native``, lz4 frames unless
  the client has ``compress=False``) is decoded (``lz4``, ``gzip``, ``deflate``) and loaded with
  ``INSERT ... FROM INFILE``;
* an error answers HTTP 500 with ``X-ClickHouse-Exception-Code`` and ClickHouse's message as the body, so
  the client raises ``DatabaseError`` with the server's code.

Not supported: authentication (it binds 127.0.0.1 and ignores credentials), sessions and temporary tables
(every request shares the one connection), progress headers and ClickHouse's own ``compress=1`` blocks.

Test hook: ``POST /_control/delay`` with ``{"delay_s": 2.0, "queries": 1}`` holds the answer to each of the
next ``queries`` statements for ``delay_s`` seconds (a slow server, for client timeouts); ``GET
/_control/stats`` returns the statements answered, failed and delayed.

In process::

    with ChdbHttpFront("/tmp/ch") as front:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=front.port)

As a process (what multi-process and fault tests run, through
:class:`~torghut.connectors.clickhouse.front_process.HttpFrontProcess`)::

    python -m torghut.connectors.clickhouse.http_front --path /tmp/ch --port 8123
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

from torghut.connectors.local_http import HOST, KeepAliveHandler, LocalHttpServer

_log = logging.getLogger(__name__)

STD_EXCEPTION = 1001
"""ClickHouse's error code for a failure that is not the engine's own (here: a bad request to the front)."""

# URL parameters ClickHouse's HTTP handler consumes itself; every other one (bar param_*) is a setting.
_TRANSPORT_PARAMS = frozenset(
    {
        "query", "database", "default_format", "user", "password", "quota_key", "session_id",
        "session_timeout", "session_check", "query_id", "compress", "decompress", "buffer_size",
        "wait_end_of_query", "client_protocol_version", "role", "stacktrace",
        # Settings only the HTTP handler reads: meaningless here, so not applied to the engine.
        "send_progress_in_http_headers", "http_headers_progress_interval_ms", "enable_http_compression",
        "cancel_http_readonly_queries_on_client_close",
    }
)  # fmt: skip
_INSERT_WITH_DATA = re.compile(
    rb"\A\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)[ \t]*(?:\r?\n|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*\Z", re.IGNORECASE)
_READ_STATEMENT = re.compile(r"\A[\s(]*(SELECT|WITH|SHOW|DESC|DESCRIBE|EXISTS|EXPLAIN)\b", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code: (\d+)\.")
_SETTING_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


class FrontError(Exception):
    """A statement the front answers with an error: HTTP status, ClickHouse code and message."""

    def __init__(self, message: str, *, code: int = STD_EXCEPTION, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Statement:
    """One decoded request.

    Attributes:
        sql: The statement; for an INSERT with data, the ``INSERT INTO ... FORMAT F`` header only.
        params: Server-side bound parameters, without the ``param_`` prefix.
        settings: Settings to run it with.
        database: The current database for it.
        insert_data: The rows of an ``INSERT ... FORMAT F``, in format ``F``; None otherwise.
    """

    sql: str
    params: Mapping[str, str]
    settings: Mapping[str, str]
    database: str = "default"
    insert_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What the engine returned: the body, its format (None for statements without a result) and a summary."""

    body: bytes
    fmt: str | None
    summary: Mapping[str, str]


def decode_body(body: bytes, encoding: str | None) -> bytes:
    """Undo the request's ``Content-Encoding``: lz4 frames (clickhouse-connect's), gzip or deflate.

    Raises:
        FrontError: for any other encoding, or a truncated lz4 body.
    """
    name = (encoding or "identity").strip().lower()
    if name == "identity" or not body:
        return body
    if name == "gzip":
        return gzip.decompress(body)
    if name == "deflate":
        return zlib.decompress(body)
    if name == "lz4":
        import lz4.frame  # type: ignore[import-untyped]  # noqa: PLC0415  (clickhouse-connect's dependency)

        parts, rest = [], body
        while rest:  # one frame per block: clickhouse-connect compresses each block on its own
            frame = lz4.frame.LZ4FrameDecompressor()
            parts.append(frame.decompress(rest))
            if not frame.eof:
                msg = "truncated lz4 request body"
                raise FrontError(msg, status=400)
            rest = frame.unused_data
        return b"".join(parts)
    msg = f"unsupported Content-Encoding {encoding!r}: send lz4, gzip, deflate or none (compress=False)"
    raise FrontError(msg, status=400)


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """Return the fields of a ``multipart/form-data`` body (clickhouse-connect's form-encoded query)."""
    head = b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


def parse_statement(url_params: Mapping[str, str], body: bytes) -> Statement:
    r"""Split a request into its statement, bound parameters, settings, database and INSERT data.

    >>> s = parse_statement({"query": "INSERT INTO t (a) FORMAT TSV", "database": "db", "max_threads": "2"},
    ...                     b"1\n2\n")
    >>> s.sql, s.database, dict(s.settings), s.insert_data
    ('INSERT INTO t (a) FORMAT TSV', 'db', {'max_threads': '2'}, b'1\n2\n')
    >>> parse_statement({"param_n": "7"}, b"SELECT {n:UInt8} FORMAT Native").params
    {'n': '7'}
    """
    query = url_params.get("query", "").encode()
    text = query + b"\n" + body if query and body else query or body
    params = {name[6:]: value for name, value in url_params.items() if name.startswith("param_")}
    settings = {
        name: value
        for name, value in url_params.items()
        if name not in _TRANSPORT_PARAMS and not name.startswith("param_")
    }
    database = url_params.get("database") or "default"
    insert = _INSERT_WITH_DATA.match(text)
    if insert is not None:
        sql = text[: insert.end()].decode().strip()
        return Statement(sql, params, settings, database, insert_data=text[insert.end() :])
    return Statement(text.decode(), params, settings, database)


def _quote(value: str, quote: str = "'") -> str:
    return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def _error_code(message: str) -> int:
    found = _ERROR_CODE.search(message)
    return int(found.group(1)) if found else STD_EXCEPTION


class ChdbEngine:
    """One kept-open chdb connection that runs one statement at a time.

    The connection keeps its current database and settings between statements; the engine tracks them and
    issues ``USE`` / ``SET`` only for what a statement needs changed, so the common case (every request
    with the same settings) costs no extra query.
    """

    def __init__(self, path: str) -> None:
        """Open chdb on ``path`` (a data directory, or ``:memory:``)."""
        self._conn = chdb.connect(path)  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        self._database = "default"
        self._settings: dict[str, str] = {}

    def execute(self, statement: Statement) -> Answer:
        """Run ``statement`` and return its answer.

        Raises:
            FrontError: carrying ClickHouse's code and message when the engine refuses the statement.
        """
        sql, infile = statement.sql, None
        if statement.insert_data is not None:
            insert = _INSERT_WITH_DATA.match(statement.sql.encode())
            assert insert is not None  # parse_statement matched the same header
            with tempfile.NamedTemporaryFile(suffix=".ch", delete=False) as handle:
                handle.write(statement.insert_data)
                infile = handle.name
            target, fmt = insert.group("target").decode(), insert.group("fmt").decode()
            sql = f"INSERT INTO {target} FROM INFILE {_quote(infile)} FORMAT {fmt}"
        try:
            with self._lock:
                self._use(statement.database)
                self._apply(statement.settings)
                result = self._conn.query(sql, "TabSeparated", params=dict(statement.params))
        except (RuntimeError, ValueError, TypeError) as error:  # chdb raises ChdbError, a RuntimeError
            raise FrontError(str(error).strip(), code=_error_code(str(error))) from error
        finally:
            if infile is not None:
                os.unlink(infile)
        fmt_clause = _TRAILING_FORMAT.search(sql)
        fmt = fmt_clause.group(1) if fmt_clause else "TabSeparated" if _READ_STATEMENT.match(sql) else None
        rows = str(result.rows_read())
        summary = {"read_rows": rows, "read_bytes": str(result.bytes_read())}
        if infile is not None:
            summary.update(written_rows=rows, written_bytes=str(result.bytes_read()))
        summary["elapsed_ns"] = str(int(result.elapsed() * 1e9))
        return Answer(result.bytes() or b"", None if infile is not None else fmt, summary)

    def _use(self, database: str) -> None:
        if database != self._database:
            self._conn.query(f"USE {_quote(database, '`')}", "TabSeparated")
            self._database = database

    def _apply(self, settings: Mapping[str, str]) -> None:
        for name in [name for name in self._settings if name not in settings]:
            self._conn.query(f"SET {name} = DEFAULT", "TabSeparated")
            del self._settings[name]
        for name, value in settings.items():
            if self._settings.get(name) != value:
                if not _SETTING_NAME.match(name):
                    msg = f"invalid setting name {name!r}"
                    raise FrontError(msg, code=115, status=400)
                self._conn.query(f"SET {name} = {_quote(value)}", "TabSeparated")
                self._settings[name] = value

    def close(self) -> None:
        """Close the connection (after any statement in flight)."""
        with self._lock:
            self._conn.close()


class _Control:
    """The control API's state: the delay hook and the counts of what was served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delay_s, self._remaining = 0.0, 0
        self.stats = {"statements": 0, "errors": 0, "delayed": 0}

    def arm(self, delay_s: float, queries: int) -> None:
        with self._lock:
            self._delay_s, self._remaining = delay_s, queries

    def take(self) -> float:
        with self._lock:
            if self._remaining <= 0:
                return 0.0
            self._remaining -= 1
            self.stats["delayed"] += 1
            return self._delay_s

    def count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1


class _Server(LocalHttpServer):
    def __init__(self, port: int, engine: ChdbEngine) -> None:
        super().__init__(port, _Handler)
        self.engine = engine
        self.control = _Control()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # the client left (a timeout): nothing to answer
            _log.debug("client %s went away: %s", client_address, error)
        else:
            _log.exception("chdb HTTP front: request from %s failed", client_address)


class _Handler(KeepAliveHandler):  # keep-alive, as clickhouse-connect's pooled connections expect
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if url.path == "/_control/delay":
            request = json.loads(body or b"{}")
            self.server.control.arm(float(request.get("delay_s", 0.0)), int(request.get("queries", 1)))
            return self.send_body(200, b'{"ok": true}\n', {"Content-Type": "application/json"})
        if url.path == "/_control/stats":
            return self.send_body(200, json.dumps(self.server.control.stats).encode(), {})
        if url.path == "/ping" or (url.path == "/" and not body and "query" not in params):
            return self.send_body(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
        try:
            body = decode_body(body, self.headers.get("Content-Encoding"))
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                params.update(form_fields(content_type, body))
                body = b""
            statement = parse_statement(params, body)
            delay_s = self.server.control.take()
            if delay_s > 0:
                time.sleep(delay_s)
            answer = self.server.engine.execute(statement)
        except FrontError as error:
            self.server.control.count("errors")
            headers = {"X-ClickHouse-Exception-Code": str(error.code), "Content-Type": "text/plain"}
            return self.send_body(error.status, (str(error) + "\n").encode(), headers)
        self.server.control.count("statements")
        headers = {
            "Content-Type": "application/octet-stream",
            "X-ClickHouse-Query-Id": params.get("query_id", ""),
            "X-ClickHouse-Summary": json.dumps(answer.summary),
        }
        if answer.fmt is not None:
            headers["X-ClickHouse-Format"] = answer.fmt
        return self.send_body(200, answer.body, headers)

    def _read_body(self) -> bytes:
        # clickhouse-connect streams inserts: chunked transfer encoding.
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


class ChdbHttpFront:
    """The front in this process, serving from a daemon thread (``with`` starts and stops it).

    chdb allows one data directory per process: in a process that already uses chdb, pass the same path.
    """

    def __init__(self, path: str | Path, port: int = 0) -> None:
        """Open chdb on ``path`` and bind ``127.0.0.1:port`` (0: any free port)."""
        self.engine = ChdbEngine(str(path))
        self._server = _Server(port, self.engine)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.port

    def delay_next(self, delay_s: float, queries: int = 1) -> None:
        """Hold the answers to the next ``queries`` statements for ``delay_s`` seconds (the test hook)."""
        self._server.control.arm(delay_s, queries)

    def start(self) -> ChdbHttpFront:
        """Serve on a daemon thread."""
        self._thread = self._server.serve_in_thread(0.05, "chdb-http-front")
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and the chdb connection."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        self.engine.close()

    def __enter__(self) -> ChdbHttpFront:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve ``--path`` on ``127.0.0.1:--port`` until SIGTERM or SIGINT; print the URL on the first line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--path", required=True, help="chdb data directory (created when missing)")
    parser.add_argument("--port", type=int, default=8123, help="port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    front = ChdbHttpFront(args.path, args.port).start()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    print(f"http://{HOST}:{front.port}", flush=True)  # the first line of stdout is the CLI's contract
    _log.info("chdb HTTP front on http://%s:%d serving %s", HOST, front.port, args.path)
    while not stopping.wait(0.5):
        pass
    front.stop()


if __name__ == "__main__":
    main()
