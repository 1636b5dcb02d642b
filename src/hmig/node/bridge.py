"""Renders `.js` migrations to SQL with node-pg-migrate 9's own MigrationBuilder.

`NodeBridge` runs one Node process (`bridge/bridge.mjs`) for a whole hmig run: `start` imports
every JS migration in order, so shorthands accumulate as node-pg-migrate's runner accumulates
them, and `render` replays node-pg-migrate's `Migration.apply` for one file and direction. Every
file is imported with jiti, as node-pg-migrate 9 imports it: `.js`, `.cjs`, `.mjs` and
TypeScript (`.ts`, `.cts`, `.mts`) alike. While a migration runs, its `pgm.db.query/select`
calls come back here and go to the caller's `QueryFn`, i.e. to hmig's connection inside the
migration's transaction. This module never opens a database connection, never executes the SQL
it returns, starts Node only through `hmig._subprocess`, and reads no environment but the
mapping it is given.

Protocol: one JSON document per line, requests on Node's stdin, replies on its stdout.

- Node → hmig, once at start: `{"type":"ready","node":"20.19.1","nodePgMigrate":"9.0.0"}`.
- hmig → Node: `{"type":"load","id":N,"file":ABSPATH}`;
  reply `{"type":"loaded","id":N,"up":KIND,"down":KIND}` or
  `{"type":"failed","id":N,"error":ERROR}`. KIND is what the module exports under that name:
  `"function"`, `"missing"` (undefined), `"false"`, or another `typeof` (`"string"`, ...).
- hmig → Node: `{"type":"render","id":N,"file":ABSPATH,"direction":"up"|"down"}`;
  reply `{"type":"rendered","id":N,"steps":[SQL,...],"transactional":BOOL}` or `failed`.
- While rendering, Node → hmig: `{"type":"query","id":N,"qid":Q,"text":SQL,"values":[...]}`,
  one `pgm.db.query/select` call, its values converted by pg's `utils.prepareValue` (text or
  null; a Buffer as `{"$hmig":"bytes","value":HEX}`). No values: the simple query protocol, as
  pg uses it, so SQL may hold several statements.
  hmig → Node: `{"type":"result","qid":Q,"ok":true,"results":[RESULT,...]}`, one RESULT per
  statement, raw as the server sent it: `{"command":TAG,"fields":[FIELD,...]|null,
  "rows":[[TEXT|null,...],...]}`. TAG is the CommandComplete tag (`"SELECT 2"`, `"INSERT 0 1"`;
  null for an empty query); FIELD is `[name,tableID,columnID,dataTypeID,dataTypeSize,
  dataTypeModifier]` (`fields` is null when the statement sent no row description); every value
  is the server's text output. Node feeds these to pg's own `Query` and `Result` (pg's type
  parsers, `rowMode: 'array'`, an array of results for several statements), so the migration
  gets exactly what pg's `client.query` resolves with.
  Or `{"type":"result","qid":Q,"ok":false,"error":{"message","code","detail","hint",
  "position","severity"}}`, which Node turns into pg's `DatabaseError` and rejects with.
- Node → hmig at any time: `{"type":"log","level":LEVEL,"text":TEXT}` (a migration's console
  output and node-pg-migrate's logger); collected in `NodeBridge.logs`, never required.
- ERROR is `{"message","name","stack","code","queryId","line","column"}`; `line` is the first
  stack frame (or parse error location) in the migration's own file.
- hmig closing Node's stdin ends the process.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from hmig._subprocess import Process, spawn, stop, wait
from hmig.binaries import check_node_version
from hmig.errors import HmigError, JsMigrationError, StatementFailed, ToolMissing
from hmig.model import Kind, MigrationFile, QueryResult, Rendered, Statement
from hmig.ports import QueryFn

BRIDGE_DIR: Final = Path(__file__).resolve().parent / "bridge"
"""The folder holding bridge.mjs, its package.json and package-lock.json."""

Message = dict[str, Any]

_NO_TRANSACTION_REASON: Final = "pgm.noTransaction()"
_STDERR_LINES: Final = 40
_STDERR_CHARS: Final = 4000
_EXIT_GRACE_S: Final = 5.0
_EOF: Final = object()


@dataclass(frozen=True, slots=True)
class BridgeLog:
    """One line a migration (or node-pg-migrate's logger) printed while it ran."""

    level: str
    text: str
    migration: str | None


class NodeBridge:
    """One Node process that loads and renders every `.js` migration of an hmig run."""

    def __init__(
        self, *, node: Path, bridge_dir: Path, env: Mapping[str, str], timeout_s: float = 60.0
    ) -> None:
        self._node = node
        self._bridge_dir = bridge_dir
        self._env = dict(env)
        self._timeout_s = timeout_s
        self._process: Process | None = None
        self._messages: queue.Queue[object] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._threads: list[threading.Thread] = []
        self._loaded: dict[str, Mapping[str, str]] = {}
        self._next_id = 0
        self._current_id: int | None = None
        self._current_name: str | None = None
        self._failed_queries: dict[int, StatementFailed] = {}
        self._unusable: str | None = None
        self.logs: list[BridgeLog] = []
        self.versions: Mapping[str, str] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, migrations: Sequence[MigrationFile]) -> None:
        """Spawn node once and import every given JS migration in order, applied ones included.

        node-pg-migrate's runner imports every file so shorthands accumulate
        (`{...prev, ...mod.shorthands}`); each migration sees what was accumulated up to and
        including itself. Syntax and import errors raise `JsMigrationError` with file and line.
        """
        if self._process is not None or self._unusable is not None:
            raise HmigError("NodeBridge.start() may be called only once")
        self._require_packages()
        check_node_version(self._node, env=self._env)
        self._process = spawn(
            [str(self._node), str(self._bridge_dir / "bridge.mjs")], env=self._env
        )
        self._start_readers(self._process)
        try:
            ready = self._exchange(None, migration=None, what="starting", query=None)
            self.versions = {
                "node": str(ready.get("node")),
                "nodePgMigrate": str(ready.get("nodePgMigrate")),
            }
            for migration in migrations:
                if migration.kind is Kind.JS:
                    self._load(migration)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop Node (closing its stdin asks it to exit) and the threads reading its pipes."""
        process, self._process = self._process, None
        if self._unusable is None:
            self._unusable = "it was closed"
        if process is None:
            return
        stop(process, grace=_EXIT_GRACE_S)
        for thread in self._threads:
            thread.join(timeout=_EXIT_GRACE_S)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> NodeBridge:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def stopped(self) -> bool:
        """Whether Node is gone for good (timed out, crashed, broke the protocol, or closed).

        No `.js` migration can render after that, in this run.
        """
        return self._unusable is not None

    # --- rendering ------------------------------------------------------------------------

    def require_action(self, migration: MigrationFile, *, direction: str) -> None:
        """Refuse (exit 2) a loaded migration that node-pg-migrate could not run `direction`.

        node-pg-migrate imports such a file without complaint and fails only when it runs it
        (`Migration._getAction`: "Unknown value for direction: up. Is the migration … exporting
        a 'up' function?"), after the migrations before it have run. A missing `down` is not
        refused: node-pg-migrate runs the `up` function in reverse instead.
        """
        kinds = self._loaded.get(_key(migration))
        if kinds is None:
            raise self._not_loaded(migration)
        # Migration._getAction: a missing down is the up run in reverse.
        name = "down" if direction == "down" and kinds.get("down") != "missing" else "up"
        kind = kinds.get(name, "missing")
        if kind == "function":
            return
        reason = _no_action(migration, kind=kind, name=name)
        if name != direction:
            reason += f" (without a `{direction}` export, {direction} runs up in reverse)"
        raise JsMigrationError(
            reason,
            file=migration.path,
            hint=f"node-pg-migrate runs the function a migration exports as `{name}`: "
            f"`exports.{name} = (pgm) => {{ … }};` (CommonJS) or "
            f"`export const {name} = (pgm) => {{ … }};` (ES module). Nothing was run.",
        )

    def render(self, migration: MigrationFile, *, direction: str, query: QueryFn) -> Rendered:
        """Run the migration's `up`/`down` as node-pg-migrate's Migration.apply does; its SQL."""
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        self._require_usable(migration)
        key = _key(migration)
        if key not in self._loaded:
            raise self._not_loaded(migration)
        request = {"type": "render", "file": key, "direction": direction}
        self._failed_queries = {}
        reply = self._exchange(request, migration=migration, what=f"{direction}()", query=query)
        if reply["type"] == "failed":
            raise self._js_error(migration, reply.get("error"))
        steps = reply.get("steps")
        if not isinstance(steps, list) or not all(isinstance(step, str) for step in steps):
            raise self._broken(migration, f"the Node bridge sent an unreadable reply: {reply!r}")
        transactional = bool(reply.get("transactional"))
        return Rendered(
            statements=tuple(Statement(index=i, sql=step) for i, step in enumerate(steps)),
            transactional=transactional,
            reason=None if transactional else _NO_TRANSACTION_REASON,
        )

    # --- internals ------------------------------------------------------------------------

    def _require_packages(self) -> None:
        """node-pg-migrate is installed by `npm ci`, not shipped in the wheel; say so plainly."""
        if not (self._bridge_dir / "node_modules" / "node-pg-migrate" / "package.json").is_file():
            raise ToolMissing(
                f"the Node bridge's packages are not installed ({self._bridge_dir}/node_modules "
                "has no node-pg-migrate)",
                hint=f"Run `npm ci --prefix {self._bridge_dir}`.",
            )

    def _load(self, migration: MigrationFile) -> None:
        key = _key(migration)
        reply = self._exchange(
            {"type": "load", "file": key}, migration=migration, what="loading", query=None
        )
        if reply["type"] == "failed":
            raise self._js_error(migration, reply.get("error"))
        self._loaded[key] = {name: str(reply.get(name, "missing")) for name in ("up", "down")}

    def _not_loaded(self, migration: MigrationFile) -> JsMigrationError:
        return JsMigrationError(
            "this migration was not loaded by NodeBridge.start()",
            file=migration.path,
            hint="Pass every JS migration, in order, to start() so shorthands accumulate.",
        )

    def _start_readers(self, process: Process) -> None:
        assert process.stdout is not None and process.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self, pipe: IO[bytes]) -> None:
        """Parse protocol lines into the queue; stdout must never block Node."""
        for raw in iter(pipe.readline, b""):
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                message = json.loads(text)
            except ValueError:
                message = None
            if isinstance(message, dict):
                self._messages.put(message)
            else:
                self._stderr.append(f"(stdout) {text}")
        self._messages.put(_EOF)

    def _read_stderr(self, pipe: IO[bytes]) -> None:
        """Drain stderr so Node never blocks on it; keep the tail for error messages."""
        for raw in iter(pipe.readline, b""):
            self._stderr.append(raw.decode("utf-8", errors="replace").rstrip())

    def _send(self, message: Message) -> None:
        process = self._process
        if process is None or process.stdin is None:
            return
        try:
            process.stdin.write(json.dumps(message).encode() + b"\n")
            process.stdin.flush()
        except OSError:
            pass  # Node is gone; the reader sees end of file and reports how it ended

    def _exchange(
        self,
        request: Message | None,
        *,
        migration: MigrationFile | None,
        what: str,
        query: QueryFn | None,
    ) -> Message:
        """Send `request` and wait for its reply, answering `pgm.db` queries meanwhile.

        Time spent in `query` does not count against the timeout: the database enforces its
        own statement timeout, and a long data migration is not a hung promise.
        """
        request_id: int | None = None
        if request is not None:
            self._next_id += 1
            request_id = self._next_id
            self._send({**request, "id": request_id})
        self._current_id = request_id
        self._current_name = None if migration is None else migration.name
        deadline = time.monotonic() + self._timeout_s
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    item = self._messages.get(timeout=max(remaining, 0.0))
                except queue.Empty:
                    raise self._timed_out(migration, what) from None
                if item is _EOF:
                    raise self._crashed(migration, what)
                assert isinstance(item, dict)
                kind = item.get("type")
                if kind == "log":
                    self.logs.append(
                        BridgeLog(str(item.get("level")), str(item.get("text")), self._current_name)
                    )
                elif kind == "query":
                    began = time.monotonic()
                    self._answer(item, query)
                    deadline += time.monotonic() - began
                elif (request_id is None and kind == "ready") or (
                    request_id is not None and item.get("id") == request_id
                ):
                    return item
        except BaseException:
            # An interrupt while Node still works on the request leaves it in an unknown state.
            if self._unusable is None:
                self._abandon(f"it was interrupted while {_gerund(what)}")
            raise
        finally:
            self._current_id = None

    def _answer(self, message: Message, query: QueryFn | None) -> None:
        """Run one `pgm.db` query on the caller's connection and send back rows or the error."""
        qid = message.get("qid")
        if query is None or self._current_id is None or message.get("id") != self._current_id:
            self._send(
                {
                    "type": "result",
                    "qid": qid,
                    "ok": False,
                    "error": {"message": "pgm.db was used outside the migration that owns it"},
                }
            )
            return
        values = [_from_js(value) for value in message.get("values") or []]
        try:
            results = query(str(message.get("text")), values)
        except StatementFailed as exc:
            if isinstance(qid, int):
                self._failed_queries[qid] = exc
            self._send({"type": "result", "qid": qid, "ok": False, "error": _error_to_js(exc)})
            return
        except BaseException:
            # Anything but a server error (interrupt, lost connection) ends the run: Node still
            # waits for this answer, so the bridge cannot be used again.
            self._abandon("a pgm.db query was interrupted")
            raise
        self._send(_results_to_js(qid, results))

    def _js_error(self, migration: MigrationFile, error: object) -> JsMigrationError:
        info = error if isinstance(error, dict) else {}
        line = info.get("line")
        failure = JsMigrationError(
            str(info.get("message") or "the migration failed"),
            file=migration.path,
            line=line if isinstance(line, int) else None,
        )
        query_id = info.get("queryId")
        # An unhandled rejection from pgm.db keeps the server's error as the cause.
        failure.__cause__ = (
            self._failed_queries.get(query_id) if isinstance(query_id, int) else None
        )
        return failure

    def _require_usable(self, migration: MigrationFile) -> None:
        if self._process is None and self._unusable is None:
            raise HmigError("NodeBridge.render() was called before start()")
        if self._unusable is not None:
            raise JsMigrationError(
                f"the Node bridge cannot be used any more: {self._unusable}", file=migration.path
            )

    def _abandon(self, reason: str) -> None:
        """Stop Node for good after a failure that leaves it in an unknown state."""
        self._unusable = reason
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        self.close()

    def _timed_out(self, migration: MigrationFile | None, what: str) -> HmigError:
        subject = "the Node bridge" if migration is None else f"{what} of {migration.name}"
        message = f"{subject} did not settle within {self._timeout_s:g} s"
        self._abandon(message)
        hint = (
            "Look for an endless loop, a promise that never resolves, or a callback-style "
            "migration `(pgm, run)` that never calls run()."
        )
        if migration is None:
            return ToolMissing(message, hint="Check that Node.js starts on this machine.")
        return JsMigrationError(message, file=migration.path, hint=hint)

    def _crashed(self, migration: MigrationFile | None, what: str) -> HmigError:
        process = self._process
        code = None if process is None else wait(process, timeout=_EXIT_GRACE_S)
        for thread in self._threads[1:]:
            thread.join(timeout=1.0)  # let stderr's reader collect the last words
        how = "was stopped" if code is None else _describe_exit(code)
        message = f"node {how} while {_gerund(what)}"
        tail = "\n".join(self._stderr)[-_STDERR_CHARS:].strip()
        if tail:
            message += f"; its last output:\n{tail}"
        self._abandon(message.split(";")[0])
        if migration is None:
            return ToolMissing(
                message, hint=f"Reinstall the bridge with `npm ci --prefix {self._bridge_dir}`."
            )
        return JsMigrationError(message, file=migration.path)

    def _broken(self, migration: MigrationFile, message: str) -> JsMigrationError:
        self._abandon(message)
        return JsMigrationError(message, file=migration.path)


def _key(migration: MigrationFile) -> str:
    """How Node names the file: the absolute path it imports and reports in stack traces."""
    return str(Path(migration.abspath).absolute())


def _no_action(migration: MigrationFile, *, kind: str, name: str) -> str:
    """Why node-pg-migrate would refuse to run this export, in its own words where it has any."""
    if kind == "false":
        return (
            f"it exports `{name} = false`: node-pg-migrate refuses to run it "
            f'("User has disabled {name} migration on file: {migration.name}")'
        )
    if kind != "missing":
        return f"its `{name}` export is a {kind}, not a function"
    if _blank(migration):
        return f"the file is empty: it exports no `{name}` function"
    return (
        f'it exports no `{name}` function: node-pg-migrate would fail with "Unknown value for '
        f"direction: {name}. Is the migration {migration.name} exporting a '{name}' function?\""
    )


def _blank(migration: MigrationFile) -> bool:
    try:
        return not Path(migration.abspath).read_bytes().strip()
    except OSError:
        return False


def _gerund(what: str) -> str:
    if what in ("loading", "starting"):
        return what
    return f"running {what}"


def _describe_exit(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def _error_to_js(exc: StatementFailed) -> Message:
    """The fields of pg's DatabaseError that a migration may inspect."""
    return {
        "message": exc.message,
        "severity": "ERROR",
        "code": exc.sqlstate,
        "detail": exc.detail,
        "hint": exc.server_hint,
        "position": None if exc.position is None else str(exc.position),
    }


def _results_to_js(qid: object, results: Sequence[QueryResult]) -> Message:
    """The server's raw answer; Node parses it as pg's client parses the wire messages."""
    return {
        "type": "result",
        "qid": qid,
        "ok": True,
        "results": [
            {
                "command": result.command,
                "fields": None if result.fields is None else [list(f) for f in result.fields],
                "rows": [list(row) for row in result.rows],
            }
            for result in results
        ],
    }


def _from_js(value: object) -> object:
    """A query parameter from Node: text or None as pg sends it, or tagged bytes."""
    if isinstance(value, dict) and value.get("$hmig") == "bytes":
        return bytes.fromhex(str(value.get("value", "")))
    return value
