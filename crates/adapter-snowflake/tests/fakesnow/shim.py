#!/usr/bin/env python3
"""fakesnow, made to answer like Snowflake does for the Rust `snowflake-connector-rs` client.

ca-notify's Snowflake adapter is tested against fakesnow (an offline Snowflake on DuckDB).
fakesnow answers in the shape the Python connector accepts; the Rust connector is stricter
(see the project's notes on fakesnow, section "What fakesnow lacks"). This shim runs
fakesnow's own request handlers in-process and fixes their requests and answers:

* login: supplies `data.SESSION_PARAMETERS` when the client sent none (fakesnow answers 500
  without it), and adds the token fields real Snowflake sends;
* queries: turns fakesnow's Arrow rowsets (`rowsetBase64`) into Snowflake's JSON rowsets
  (`queryResultFormat: json`, every cell text or null), the only format the Rust client reads;
* errors: gives every failed query a `data.queryId` and the other fields Snowflake always sends;
* binds: a typed NULL bind is NULL (fakesnow 0.12.1 fails on `int(None)`).

It also makes fakesnow behave like Snowflake where the adapter's safety depends on it:

* DML and DDL statements run one at a time, as Snowflake's table locks make them; a statement
  that cannot get the lock within the session's `LOCK_TIMEOUT` fails with Snowflake's lock
  error `000625`, instead of DuckDB's optimistic-concurrency conflict (fakesnow also runs a
  MERGE as several statements, which must not interleave with another session's). Inside an
  explicit transaction (`BEGIN` … `COMMIT`/`ROLLBACK`) the lock a write took is held until
  the transaction ends, as Snowflake holds a transaction's locks (one lock for every table:
  coarser than Snowflake's, never finer);
* session tokens can be expired on demand, so the client sees Snowflake's `390112`.

Test hooks (plain HTTP, 127.0.0.1 only):

* `GET  /__shim/health`               → `{"ok": true}` once fakesnow is importable and serving;
* `GET  /__shim/logins`               → every login's non-secret fields (authenticator, names,
                                         session parameters, JWT claims — never a password or key);
* `GET  /__shim/queries`              → every statement's SQL text, bind types (never values) and
                                         the login name of its session;
* `POST /__shim/expire-sessions`      → JSON `{"login_name": …}` (optional): the current sessions
                                         of that user (or of everyone) answer `390112` from now on;
* `POST /__shim/fail-next`            → JSON `{"count", "code", "message", "match", "http_status"}`:
                                         the next `count` statements whose SQL contains `match`
                                         fail with that Snowflake error code (or that HTTP status);
* `POST /__shim/hold-lock?seconds=S`  → takes the statement lock for S seconds (returns once held).

Usage: `shim.py [--host 127.0.0.1] [--port 0] [--exit-on-stdin-eof]`. The first line on stdout
is `{"port": N}` once the socket is bound; the server answers shortly after.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import decimal
import json
import socket
import sys
import threading
import uuid
from typing import Any

import duckdb
import pyarrow as pa
import snowflake.connector.errors
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import fakesnow.server as fakesnow_server

# Snowflake's default LOCK_TIMEOUT (12 hours), used when a session did not set one.
DEFAULT_LOCK_TIMEOUT_SECS = 43200.0
# Statements that only read; everything else takes the statement lock.
READ_ONLY_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXPLAIN")
# Statements Snowflake always autocommits (they end an open transaction first).
DDL_KEYWORDS = ("CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "COMMENT", "UNDROP", "TRUNCATE")

_session_counter = 0
_session_params: dict[str, dict[str, Any]] = {}
_session_logins: dict[str, str] = {}
_expired_tokens: set[str] = set()
_logins: list[dict[str, Any]] = []
_queries: list[dict[str, Any]] = []
_faults: list[dict[str, Any]] = []
_statement_lock: asyncio.Lock | None = None
# The session token whose open transaction holds the statement lock, if any.
_lock_holder: str | None = None
# Sessions inside an explicit transaction, and whether fakesnow's transaction has begun.
# fakesnow's DuckDB transactions read a snapshot taken when they begin, where Snowflake's
# READ COMMITTED statements each see what was committed before they began; so the shim
# begins the DuckDB transaction only when the session's first write holds the lock, and
# every statement after it sees what earlier lock holders committed, as on Snowflake.
_in_transaction: dict[str, bool] = {}
TRANSACTION_START = ("BEGIN", "START")
TRANSACTION_END = ("COMMIT", "ROLLBACK")


def statement_lock() -> asyncio.Lock:
    global _statement_lock
    if _statement_lock is None:
        _statement_lock = asyncio.Lock()
    return _statement_lock


def replay_request(request: Request, body: bytes) -> Request:
    """A copy of `request` whose body is `body` (fakesnow's handlers read the body themselves)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = dict(request.scope)
    scope["headers"] = [(k, v) for (k, v) in request.scope["headers"] if k.lower() != b"content-encoding"]
    return Request(scope, receive)


async def read_json(request: Request) -> dict[str, Any]:
    import gzip

    body = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body) if body else {}


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The unverified claims of a JWT (they carry no secret: issuer, subject, times)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
        return {k: claims.get(k) for k in ("iss", "sub", "iat", "exp")}
    except Exception:
        return None


async def login_request(request: Request) -> Response:
    global _session_counter
    body = await read_json(request)
    data = body.setdefault("data", {})
    params = data.get("SESSION_PARAMETERS")
    if not isinstance(params, dict):
        params = {}
    data["SESSION_PARAMETERS"] = params
    login = {
        "login_name": data.get("LOGIN_NAME"),
        "account_name": data.get("ACCOUNT_NAME"),
        "authenticator": data.get("AUTHENTICATOR", "SNOWFLAKE"),
        "has_password": bool(data.get("PASSWORD")),
        "jwt_claims": jwt_claims(data["TOKEN"]) if data.get("AUTHENTICATOR") == "SNOWFLAKE_JWT" and data.get("TOKEN") else None,
        "database": request.query_params.get("databaseName"),
        "schema": request.query_params.get("schemaName"),
        "warehouse": request.query_params.get("warehouse"),
        "role": request.query_params.get("roleName"),
        "session_parameters": params,
    }
    response = await fakesnow_server.login_request(replay_request(request, json.dumps(body).encode()))
    answer = json.loads(bytes(response.body))
    if answer.get("success"):
        _session_counter += 1
        answer_data = answer["data"]
        token = answer_data["token"]
        _session_params[token] = {k.upper(): v for k, v in params.items()}
        _session_logins[token] = login["login_name"] or ""
        answer_data.setdefault("masterToken", "master-" + token)
        answer_data.setdefault("sessionId", _session_counter)
        answer_data.setdefault("validityInSeconds", 3600)
        answer_data.setdefault("masterValidityInSeconds", 14400)
        info = answer_data.setdefault("sessionInfo", {}) or {}
        info.setdefault("roleName", login["role"] or "PUBLIC")
        info.setdefault("warehouseName", login["warehouse"])
        answer_data["sessionInfo"] = info
        login["session_id"] = _session_counter
    _logins.append(login)
    return JSONResponse(answer, status_code=response.status_code)


def session_token(request: Request) -> str | None:
    auth = request.headers.get("Authorization") or ""
    prefix = 'Snowflake Token="'
    return auth[len(prefix) : -1] if auth.startswith(prefix) and auth.endswith('"') else None


def error_answer(code: str, message: str, status: int = 200) -> JSONResponse:
    return JSONResponse(
        {
            "data": {
                "errorCode": code,
                "queryId": str(uuid.uuid4()),
                "sqlState": "",
                "age": 0,
                "internalError": False,
            },
            "code": code,
            "message": message,
            "success": False,
        },
        status_code=status,
    )


def first_keyword(sql: str) -> str:
    text = sql.lstrip()
    while text.startswith("--") or text.startswith("/*"):
        if text.startswith("--"):
            text = text.split("\n", 1)[1] if "\n" in text else ""
        else:
            text = text.split("*/", 1)[1] if "*/" in text else ""
        text = text.lstrip()
    return (text.split(None, 1) or [""])[0].strip("(").upper()


async def query_request(request: Request) -> Response:
    token = session_token(request)
    if token is not None and token in _expired_tokens:
        return JSONResponse(
            {"data": None, "code": "390112", "message": "Your session has expired. Please login again.", "success": False}
        )

    body = await read_json(request)
    sql = body.get("sqlText", "")
    bindings = body.get("bindings") or {}
    _queries.append(
        {
            "sql": sql,
            "bind_types": [b.get("type") for b in bindings.values()],
            "login_name": _session_logins.get(token or ""),
        }
    )

    for fault in _faults:
        if fault["count"] > 0 and fault.get("match", "") in sql:
            fault["count"] -= 1
            if fault.get("http_status"):
                return Response("fault injected by the test", status_code=int(fault["http_status"]))
            return error_answer(fault.get("code", "000625"), fault.get("message", "fault injected by the test"))

    replayed = replay_request(request, json.dumps(body).encode())
    global _lock_holder
    keyword = first_keyword(sql)
    session = token or ""
    if keyword in READ_ONLY_KEYWORDS:
        response = await fakesnow_server.query_request(replayed)
    elif keyword in TRANSACTION_START:
        _in_transaction[session] = False
        response = await run_text(request, body, "SELECT 'Statement executed successfully.' AS \"status\"")
    elif keyword in TRANSACTION_END:
        try:
            if _in_transaction.get(session):
                response = await fakesnow_server.query_request(replayed)
            else:
                response = await run_text(request, body, "SELECT 'Statement executed successfully.' AS \"status\"")
        finally:
            _in_transaction.pop(session, None)
            if _lock_holder == session:
                _lock_holder = None
                statement_lock().release()
    elif _lock_holder is not None and _lock_holder == session:
        # This session's open transaction holds the lock already.
        response = await fakesnow_server.query_request(replayed)
    else:
        timeout = float(_session_params.get(session, {}).get("LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT_SECS))
        lock = statement_lock()
        try:
            await asyncio.wait_for(lock.acquire(), timeout=max(timeout, 0.001))
        except asyncio.TimeoutError:
            return error_answer(
                "000625",
                f"Statement was aborted because it waited more than LOCK_TIMEOUT ({timeout:g} s) for a lock "
                "held by another statement (fakesnow shim).",
            )
        keep = session in _in_transaction and keyword not in DDL_KEYWORDS
        if keep:
            _lock_holder = session
        try:
            if keep and not _in_transaction[session]:
                begun = await run_text(request, body, "BEGIN TRANSACTION")
                _in_transaction[session] = True
                if not json.loads(bytes(begun.body)).get("success"):
                    return rewrite_query_answer(begun)
            response = await fakesnow_server.query_request(replayed)
        finally:
            if not keep:
                lock.release()
    return rewrite_query_answer(response)


async def run_text(request: Request, body: dict[str, Any], text: str) -> Response:
    """Runs `text` (no binds) on the session of `request`, through fakesnow."""
    other = dict(body)
    other["sqlText"] = text
    other.pop("bindings", None)
    return await fakesnow_server.query_request(replay_request(request, json.dumps(other).encode()))


def rewrite_query_answer(response: Response) -> Response:
    try:
        answer = json.loads(bytes(response.body))
    except ValueError:
        return response
    if not answer.get("success"):
        data = answer.get("data")
        if not isinstance(data, dict):
            data = {"errorCode": answer.get("code") or "000000"}
        if not data.get("queryId"):
            data["queryId"] = str(uuid.uuid4())
        data.setdefault("age", 0)
        data.setdefault("internalError", False)
        if data.get("sqlState") is None:
            data["sqlState"] = ""
        answer["data"] = data
        # fakesnow answers 500 for errors it did not expect; Snowflake answers 200 with success false.
        return JSONResponse(answer, status_code=200)
    data = answer.get("data") or {}
    data.setdefault("returned", data.get("total") or 0)
    data.setdefault("version", 1)
    data.setdefault("finalRoleName", "PUBLIC")
    data.setdefault("parameters", [])
    if "rowsetBase64" in data or data.get("queryResultFormat") == "arrow":
        data["rowset"] = arrow_to_json_rowset(data.pop("rowsetBase64", "") or "", data.get("rowtype") or [])
        data["queryResultFormat"] = "json"
    answer["data"] = data
    return JSONResponse(answer, status_code=response.status_code)


def arrow_to_json_rowset(encoded: str, rowtype: list[dict[str, Any]]) -> list[list[str | None]]:
    """Snowflake's JSON rowset convention: every cell is text (or null), typed by `rowtype`."""
    if not encoded:
        return []
    table = pa.ipc.open_stream(base64.b64decode(encoded)).read_all()
    columns = [column.to_pylist() for column in table.columns]
    rows: list[list[str | None]] = []
    for index in range(table.num_rows):
        rows.append([json_cell(columns[c][index], rowtype[c] if c < len(rowtype) else {}) for c in range(len(columns))])
    return rows


def epoch_text(epoch: int, fraction: int) -> str:
    value = decimal.Decimal(epoch) + decimal.Decimal(fraction) / decimal.Decimal(10**9)
    return f"{value:.9f}"


def json_cell(value: Any, column: dict[str, Any]) -> str | None:
    # fakesnow's timestamp structs mark NULL in their fields, not in the struct.
    if value is None or (isinstance(value, dict) and value.get("epoch", 0) is None):
        return None
    kind = (column.get("type") or "text").lower()
    scale = column.get("scale") or 0
    if kind == "boolean" or isinstance(value, bool):
        return "1" if value else "0"
    if kind == "fixed":
        if isinstance(value, decimal.Decimal):
            return f"{value:.{scale}f}" if scale else str(int(value))
        return str(value)
    if kind == "real":
        return repr(float(value))
    if kind == "date":
        import datetime

        return str((value - datetime.date(1970, 1, 1)).days)
    if kind in ("timestamp_ntz", "timestamp_ltz"):
        return epoch_text(value["epoch"], value["fraction"])
    if kind == "timestamp_tz":
        return f"{epoch_text(value['epoch'], value['fraction'])} {value.get('timezone', 1440)}"
    if kind == "time":
        return epoch_text(0, int(value)) if int(value) < 10**9 else epoch_text(int(value) // 10**9, int(value) % 10**9)
    if kind == "binary":
        return bytes(value).hex().upper()
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


async def health(_: Request) -> Response:
    return JSONResponse({"ok": True, "sessions": len(fakesnow_server.sessions)})


async def logins(_: Request) -> Response:
    return JSONResponse(_logins)


async def queries(_: Request) -> Response:
    return JSONResponse(_queries)


async def expire_sessions(request: Request) -> Response:
    who = (await read_json(request)).get("login_name")
    tokens = [t for t, name in _session_logins.items() if who is None or name == who]
    _expired_tokens.update(tokens)
    return JSONResponse({"expired": len(tokens)})


async def fail_next(request: Request) -> Response:
    fault = await read_json(request)
    fault.setdefault("count", 1)
    _faults.append(fault)
    return JSONResponse({"ok": True})


async def hold_lock(request: Request) -> Response:
    seconds = float(request.query_params.get("seconds", "1"))
    lock = statement_lock()
    await lock.acquire()

    async def release_later() -> None:
        await asyncio.sleep(seconds)
        lock.release()

    asyncio.get_running_loop().create_task(release_later())
    return JSONResponse({"held_for": seconds})


def install_conflict_translation() -> None:
    """DuckDB's write-write conflict becomes Snowflake's lock error, as a lock timeout would."""
    original = fakesnow_server.run_in_threadpool

    async def run_in_threadpool(func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(func, *args, **kwargs)
        except duckdb.TransactionException as e:
            raise snowflake.connector.errors.OperationalError(
                msg=f"Statement was aborted because of a conflicting lock (fakesnow shim: {e})",
                errno=625,
                sqlstate="57014",
            ) from None

    fakesnow_server.run_in_threadpool = run_in_threadpool


def install_null_binds() -> None:
    """A typed NULL bind (`{"type": "FIXED", "value": null}`) is NULL; fakesnow calls int(None)."""
    original = fakesnow_server.from_binding

    def from_binding(binding: dict[str, Any]) -> Any:
        return None if binding.get("value") is None else original(binding)

    fakesnow_server.from_binding = from_binding


def build_app() -> Starlette:
    install_conflict_translation()
    install_null_binds()
    overridden = {"/session/v1/login-request", "/queries/v1/query-request"}
    routes = [
        Route("/session/v1/login-request", login_request, methods=["POST"]),
        Route("/queries/v1/query-request", query_request, methods=["POST"]),
        Route("/__shim/health", health, methods=["GET"]),
        Route("/__shim/logins", logins, methods=["GET"]),
        Route("/__shim/queries", queries, methods=["GET"]),
        Route("/__shim/expire-sessions", expire_sessions, methods=["POST"]),
        Route("/__shim/fail-next", fail_next, methods=["POST"]),
        Route("/__shim/hold-lock", hold_lock, methods=["POST"]),
    ]
    routes += [r for r in fakesnow_server.routes if r.path not in overridden]
    return Starlette(routes=routes)


def exit_when_stdin_closes() -> None:
    """The test process that started us holds our stdin; when it ends, so do we."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        import os

        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)

    if args.exit_on_stdin_eof:
        threading.Thread(target=exit_when_stdin_closes, name="stdin watcher", daemon=True).start()

    config = uvicorn.Config(build_app(), log_level=args.log_level)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
