"""The chdb HTTP front, as a child process, through clickhouse-connect's HTTP client (what production uses)."""

from __future__ import annotations

import gzip
import http.client
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.connectors.clickhouse.support import (
    BASE_TS,
    http_client,
    insert_rows,
    signal_row,
    start_front,
    tie_heavy_rows,
)
from torghut.connectors.clickhouse import (
    ClickHouseSignalReader,
    ReaderSettings,
    SignalCursor,
    TableRef,
    create_ta_signals,
    http_front,
)
from torghut.connectors.clickhouse.front_process import HttpFrontProcess
from torghut.connectors.clickhouse.http_front import FrontError, decode_body, parse_statement
from torghut.connectors.local_http import HOST

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpFrontProcess]:
    process = start_front(tmp_path_factory.mktemp("front"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(front: HttpFrontProcess) -> Iterator[Any]:
    ch = http_client(front)  # the defaults: lz4-compressed inserts, compressed answers accepted
    yield ch
    ch.close()


@pytest.fixture
def table(client: Any) -> Iterator[TableRef]:
    database = f"front_{uuid.uuid4().hex[:12]}"
    yield create_ta_signals(client, TableRef(database, "ta_signals"), ttl_days=None)
    client.command(f"DROP DATABASE IF EXISTS {database}")


def test_ping_and_queries_share_one_kept_alive_connection_with_nagle_off(front: HttpFrontProcess) -> None:
    # Keep-alive without TCP_NODELAY stalls every round trip ~40 ms on delayed ACKs (Nagle's algorithm).
    # The front's own end is checked in-process below; the figure: benchmarks/bench_round_trips.py.
    ch = http_client(front, dedicated_pool=True)  # a pool of its own, with clickhouse-connect's options
    try:
        assert ch.ping()
        assert ch.server_version.startswith("2")  # the chdb engine's ClickHouse version
        for _ in range(50):
            assert ch.query("SELECT 1").result_rows == [(1,)]
        pools = ch.http.pools
        (pool,) = [pools[key] for key in pools.keys()]
        assert pool.num_connections == 1, "the front did not keep the connection alive"
        (connection,) = [c for c in pool.pool.queue if c is not None]
        assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        ch.close()


def test_the_fronts_connections_have_nagle_off_and_stay_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    # The front's server classes, in process (the child process runs the same ones); /ping never
    # reaches the engine, so none is needed.
    accepted: list[int] = []  # TCP_NODELAY of each connection the server accepted
    setup = http_front._Handler.setup

    def recording_setup(handler: http_front._Handler) -> None:
        setup(handler)
        accepted.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(http_front._Handler, "setup", recording_setup)
    server = http_front._Server(0, engine=None)  # type: ignore[arg-type]
    thread = server.serve_in_thread(0.05, "front-nodelay-test")
    try:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
        for _ in range(3):
            conn.request("GET", "/ping")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"Ok.\n")
            assert response.version == 11 and not response.will_close  # HTTP/1.1 keep-alive
        conn.close()
    finally:
        server.shutdown()
        thread.join(timeout=30)
        server.server_close()
    assert len(accepted) == 1, "the requests did not share one connection"
    assert accepted[0] != 0, "the front's connection has Nagle's algorithm on (no TCP_NODELAY)"


@pytest.mark.parametrize("compress", [True, False, "gzip"])
def test_inserts_in_every_encoding_are_read_back_by_the_signal_reader(
    front: HttpFrontProcess, table: TableRef, compress: bool | str
) -> None:
    ch = http_client(front, compress=compress)
    rows = tie_heavy_rows(symbols=5, timestamps=40, seqs_per_ts=2)
    insert_rows(ch, table, rows[:150])
    insert_rows(ch, table, rows[150:])  # several lz4 frames per body when compressed
    reader = ClickHouseSignalReader(ch, ReaderSettings(table=str(table), batch_size=1000, fast_forward=False))
    result = reader.fetch(SignalCursor(BASE_TS - timedelta(seconds=1)), BASE_TS)
    ch.close()
    assert len(result.rows) == len(rows) == 400
    assert result.rows[0]["event_ts"] == "2026-02-19 14:30:00.000"
    assert result.rows[0]["seq"] == "0"  # JSONEachRow shape: 64-bit integers as strings
    assert result.new_cursor == SignalCursor(BASE_TS + timedelta(milliseconds=500 * 39), 79, "S004")


def test_server_side_parameters_and_per_request_settings(client: Any) -> None:
    got = client.query(
        "SELECT {n:UInt32} + 1, {s:String}, {t:DateTime64(3, 'UTC')}",
        parameters={"n": 41, "s": "it's", "t": "2026-02-19 14:30:05.250"},
    ).result_rows
    assert got[0][:2] == (42, "it's")
    assert got[0][2].isoformat().startswith("2026-02-19T14:30:05.250")
    read = "SELECT getSetting('max_block_size')"
    default = client.query(read).result_rows[0][0]
    assert client.query(read, settings={"max_block_size": 1234}).result_rows == [(1234,)]
    assert client.query(read).result_rows == [(default,)], "a setting leaked into the next request"


def test_form_encoded_queries(front: HttpFrontProcess) -> None:
    ch = http_client(front, form_encode_query_params=True)
    assert ch.query("SELECT {s:String}", parameters={"s": "x" * 10}).result_rows == [("x" * 10,)]
    ch.close()


def test_errors_carry_the_clickhouse_code_and_message(client: Any, table: TableRef) -> None:
    with pytest.raises(DatabaseError) as missing:
        client.query(f"SELECT * FROM {table.database}.no_such_table")
    assert missing.value.code == 60  # UNKNOWN_TABLE
    assert "no_such_table" in str(missing.value)
    with pytest.raises(DatabaseError) as syntax:
        client.command("SELEKT 1")
    assert syntax.value.code == 62  # SYNTAX_ERROR
    assert client.query("SELECT 1").result_rows == [(1,)]  # the connection is fine afterwards


def test_commands_report_results_like_clickhouse(client: Any, table: TableRef) -> None:
    insert_rows(client, table, [signal_row("A", BASE_TS, 1)])
    assert client.command(f"SELECT count() FROM {table}") == 1
    assert client.command(f"SELECT symbol FROM {table} WHERE 0") == ""
    assert client.command(f"ALTER TABLE {table} DELETE WHERE 0").written_rows == 0  # a summary, no result


def test_parse_statement_splits_the_insert_header_from_its_data() -> None:
    native = b"\x02\x01\x01a\x06UInt8\n"  # data may start with or contain newlines
    body = b"INSERT INTO db.t (`a`) FORMAT Native\n" + native
    statement = parse_statement({"database": "db", "session_id": "s", "param_x": "1"}, body)
    assert statement.sql == "INSERT INTO db.t (`a`) FORMAT Native"
    assert statement.insert_data == native
    assert dict(statement.params) == {"x": "1"}
    assert dict(statement.settings) == {}
    in_url = parse_statement({"query": "INSERT INTO t FORMAT Native"}, native)
    assert (in_url.sql, in_url.insert_data) == ("INSERT INTO t FORMAT Native", native)
    assert parse_statement({"query": "SELECT 1"}, b"").insert_data is None


def test_decode_body_handles_multi_frame_lz4_gzip_and_refuses_the_rest() -> None:
    data = b"block one|" * 50 + b"block two"
    frames = lz4.frame.compress(data[:100]) + lz4.frame.compress(data[100:])
    assert decode_body(frames, "lz4") == data
    assert decode_body(gzip.compress(data), "gzip") == data
    assert decode_body(data, None) == data
    with pytest.raises(FrontError, match="truncated"):
        decode_body(frames[:-3], "lz4")
    with pytest.raises(FrontError, match="unsupported Content-Encoding 'br'") as refused:
        decode_body(data, "br")
    assert refused.value.status == 400


def test_the_data_directory_outlives_the_process(tmp_path: Path) -> None:
    process = start_front(tmp_path)
    try:
        ch = http_client(process)
        ref = create_ta_signals(ch, TableRef("torghut", "ta_signals"), ttl_days=None)
        insert_rows(ch, ref, [signal_row("A", BASE_TS, n) for n in range(5)])
        process.kill()
        assert not ch.ping()
        process.start()
        assert ch.query(f"SELECT count() FROM {ref}").result_rows == [(5,)]
        ch.close()
    finally:
        process.stop()
