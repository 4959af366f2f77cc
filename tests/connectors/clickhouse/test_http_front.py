"""The chdb HTTP front, as a child process, through clickhouse-connect's HTTP client (what production uses)."""

from __future__ import annotations

import gzip
import statistics
import time
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
)
from torghut.connectors.clickhouse.front_process import HttpFrontProcess
from torghut.connectors.clickhouse.http_front import FrontError, decode_body, parse_statement

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


def test_ping_and_a_query_round_trip(front: HttpFrontProcess, client: Any) -> None:
    assert client.ping()
    assert client.server_version.startswith("2")  # the chdb engine's ClickHouse version
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        assert client.query("SELECT 1").result_rows == [(1,)]
        timings.append(time.perf_counter() - started)
    median_ms = statistics.median(timings) * 1000
    print(f"chdb HTTP front: SELECT 1 round trip median {median_ms:.2f} ms over {len(timings)} queries")
    assert median_ms < 20, f"a round trip took {median_ms:.1f} ms: is TCP_NODELAY lost?"


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
