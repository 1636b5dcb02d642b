/**
 * hmig's Node side: loads node-pg-migrate migrations with jiti and renders them to SQL with
 * node-pg-migrate 9's own MigrationBuilder, answering `pgm.db.query/select` through hmig.
 *
 * It speaks JSON lines: requests on stdin, replies on stdout (the protocol is described in
 * hmig/node/bridge.py). It must never touch a database or write anything but protocol
 * messages to stdout: a migration's console output becomes `log` messages, and direct writes
 * to process.stdout go to stderr.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, extname } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';

import { createJiti } from 'jiti';
import { db as nodePgMigrateDb } from 'node-pg-migrate/db';
import { MigrationBuilder } from 'node-pg-migrate/migrationBuilder';
import Query from 'pg/lib/query.js';
import TypeOverrides from 'pg/lib/type-overrides.js';
import pgUtils from 'pg/lib/utils.js';

// --- protocol output: keep stdout for protocol messages only -------------------------------

const protocolWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = (...args) => process.stderr.write(...args);

/** Send one protocol message (one JSON document per line). */
function send(message) {
  protocolWrite(`${JSON.stringify(message)}\n`);
}

/** A logger with the methods node-pg-migrate's runner and MigrationBuilder call. */
function makeLogger() {
  const emit =
    (level) =>
    (...args) =>
      send({ type: 'log', level, text: format(...args) });
  return {
    log: emit('info'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    debug: emit('debug'),
    trace: emit('debug'),
  };
}

const logger = makeLogger();
// A migration's console output must not reach stdout; hmig receives it as `log` messages.
Object.assign(console, logger);

// --- loading ------------------------------------------------------------------------------

// Same jiti instance node-pg-migrate 9 builds in src/migrationLoader.ts: createJiti(cwd()).
const jiti = createJiti(process.cwd());

/** Loaded migrations by absolute path: their module and the shorthands they see. */
const loaded = new Map();
/** Shorthands accumulated over every file loaded so far, as in runner.ts loadMigrations. */
let accumulatedShorthands = {};

async function load(file) {
  const actions = await jiti.import(file);
  accumulatedShorthands = { ...accumulatedShorthands, ...actions.shorthands };
  // Each migration gets a snapshot of what was accumulated up to and including itself.
  loaded.set(file, { actions, shorthands: { ...accumulatedShorthands } });
  return { up: exportKind(actions.up), down: exportKind(actions.down) };
}

/**
 * What a module exports as `up` or `down`, as Migration._getAction tells them apart: undefined
 * (a missing down is the up reversed; a missing up fails), `false` (disabled), or a function.
 * Read through the module object itself: jiti's CommonJS interop does not list every export
 * in Object.keys.
 */
function exportKind(value) {
  if (value === undefined) return 'missing';
  if (value === false) return 'false';
  return typeof value;
}

// --- pgm.db proxied to hmig -----------------------------------------------------------------
//
// node-pg-migrate's runner gives MigrationBuilder `db(client)` (src/db.ts), whose query calls
// pg's `client.query`. Here the same `db` wraps a client whose wire is hmig: pg's own `Query`
// normalizes the call and, fed the server's raw answer, builds pg's own `Result` with pg's type
// parsers. Only the bytes between client and server travel through hmig.

const require = createRequire(import.meta.url);
// pg's own copy of pg-protocol: the classes its parser builds from the server's messages.
const { DatabaseError, Field } = createRequire(require.resolve('pg'))('pg-protocol/dist/messages.js');

let nextQueryId = 1;
const pendingQueries = new Map();

/** A parameter as pg's client binds it (Query.prepare → utils.prepareValue): text, null, bytes. */
function encodeParameter(value) {
  const prepared = pgUtils.prepareValue(value);
  if (Buffer.isBuffer(prepared)) return { $hmig: 'bytes', value: prepared.toString('hex') };
  return prepared;
}

/** The fields pg-protocol's parser sets on every DatabaseError (undefined when not sent). */
const ERROR_FIELDS = [
  'severity',
  'code',
  'detail',
  'hint',
  'position',
  'internalPosition',
  'internalQuery',
  'where',
  'schema',
  'table',
  'column',
  'dataType',
  'constraint',
  'file',
  'line',
  'routine',
];

/** What pg-protocol's parser builds from an ErrorResponse, with what hmig knows of it. */
function databaseError(qid, error) {
  const err = new DatabaseError(error.message, undefined, 'error');
  for (const key of ERROR_FIELDS) err[key] = error[key] ?? undefined;
  Object.defineProperty(err, 'hmigQueryId', { value: qid, enumerable: false });
  return err;
}

/** Send one query to hmig, as pg's Query.submit would send it to the server. */
function submit(renderId, query) {
  let error = null;
  let values = [];
  if (typeof query.text !== 'string' && typeof query.name !== 'string') {
    error = new Error('A query must have either text or a name. Supplying neither is unsupported.');
  } else if (typeof query.text !== 'string') {
    error = new Error('pgm.db cannot run a prepared statement by name alone (hmig): pass its text');
  } else if (query.values && !Array.isArray(query.values)) {
    error = new Error('Query values must be an array');
  } else if (query.binary) {
    error = new Error('pgm.db does not support binary results (hmig)');
  } else if (query.requiresPreparation()) {
    try {
      values = (query.values ?? []).map(encodeParameter);
    } catch (err) {
      error = err;
    }
  }
  if (error) {
    process.nextTick(() => query.handleError(error, null));
    return;
  }
  const qid = nextQueryId++;
  pendingQueries.set(qid, query);
  send({ type: 'query', id: renderId, qid, text: query.text, values });
}

/** pg's Client.query (pg/lib/client.js), with hmig in place of the connection. */
function makeClient(renderId) {
  const types = new TypeOverrides();
  return {
    query(config, values, callback) {
      if (config == null) throw new TypeError('Client was passed a null or undefined query');
      if (typeof config.submit === 'function') {
        throw new TypeError('pgm.db does not support custom query objects such as pg-cursor (hmig)');
      }
      const query = new Query(config, values, callback);
      let result;
      if (!query.callback) {
        result = new Promise((resolve, reject) => {
          query.callback = (err, res) => (err ? reject(err) : resolve(res));
        }).catch((err) => {
          Error.captureStackTrace(err);
          throw err;
        });
      } else if (typeof query.callback !== 'function') {
        throw new TypeError('callback is not a function');
      }
      if (query._result && !query._result._types) query._result._types = types;
      submit(renderId, query);
      return result;
    },
  };
}

/** The `db` node-pg-migrate's runner passes to MigrationBuilder, bound to one render. */
function makeDb(renderId) {
  return nodePgMigrateDb(makeClient(renderId), logger);
}

/** hmig's answer, replayed into the Query as the messages pg-protocol would have parsed. */
function settleQuery(message) {
  const query = pendingQueries.get(message.qid);
  if (!query) return;
  pendingQueries.delete(message.qid);
  if (!message.ok) {
    query.handleError(databaseError(message.qid, message.error), null);
    return;
  }
  for (const { command, fields, rows } of message.results) {
    if (fields !== null) {
      query.handleRowDescription({ fields: fields.map((field) => new Field(...field, 'text')) });
    }
    for (const row of rows) query.handleDataRow({ fields: row });
    if (command === null) query.handleEmptyQuery(null);
    else query.handleCommandComplete({ text: command }, null);
  }
  query.handleReadyForQuery(null);
}

// --- rendering: node-pg-migrate 9's Migration.apply/_getAction/_apply -----------------------

async function render(id, file, direction) {
  const entry = loaded.get(file);
  if (!entry) throw new Error(`Migration ${file} was not loaded`);
  const { actions, shorthands } = entry;
  const name = basename(file, extname(file));
  const pgm = new MigrationBuilder(makeDb(id), shorthands, false, logger);
  // Migration._getAction: a missing down is the up run in reverse.
  const up = actions.up;
  const down = direction === 'down' && actions.down === undefined ? up : actions.down;
  const action = direction === 'up' ? up : down;
  if (action === false) throw new Error(`User has disabled ${direction} migration on file: ${name}`);
  if (typeof action !== 'function') {
    throw new Error(
      `Unknown value for direction: ${direction}. Is the migration ${name} exporting a '${direction}' function?`,
    );
  }
  if (down === up) pgm.enableReverseMode();
  // Migration._apply
  if (action.length === 2) {
    await new Promise((resolve) => {
      action(pgm, resolve);
    });
  } else {
    await action(pgm);
  }
  return { steps: [...pgm.getSqlSteps()], transactional: pgm.isUsingTransaction() };
}

// --- errors -------------------------------------------------------------------------------

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The line and column of the first place in `err` that points into `file`. */
function locate(err, file) {
  const names = new Set([file]);
  try {
    names.add(realpathSync(file));
  } catch {
    // a missing file has no real path; the plain one is enough
  }
  for (const name of [...names]) names.add(pathToFileURL(name).href);
  const texts = [err?.stack, err?.message].filter((t) => typeof t === 'string');
  let best = null;
  for (const text of texts) {
    for (const name of names) {
      const match = new RegExp(`${escapeRegExp(name)}:(\\d+)(?::(\\d+))?`).exec(text);
      if (match && (best === null || match.index < best.index)) {
        best = { index: match.index, line: Number(match[1]), column: match[2] ? Number(match[2]) : null };
      }
    }
    if (best) break;
  }
  return best ? { line: best.line, column: best.column } : { line: null, column: null };
}

/** What went wrong, as one message without the location jiti appends to parse errors. */
function describe(err, file) {
  if (!(err instanceof Error)) return format('%s', err);
  let message = err.message;
  for (const name of [file, pathToFileURL(file).href]) {
    message = message.replace(new RegExp(`\\s*${escapeRegExp(name)}:\\d+(?::\\d+)?\\s*$`), '');
  }
  // Node's module resolver appends the importing chain, which names only this file again.
  message = message.replace(/\nRequire stack:[\s\S]*$/, '').trim();
  const name = err.name && err.name !== 'Error' && err.name !== 'error' ? err.name : null;
  return name && !message.startsWith(`${name}:`) ? `${name}: ${message}` : message;
}

function failure(err, file) {
  const { line, column } = locate(err, file);
  return {
    message: describe(err, file),
    name: err instanceof Error ? err.name : typeof err,
    stack: err instanceof Error ? String(err.stack ?? '') : '',
    code: err?.code ?? null,
    queryId: err?.hmigQueryId ?? null,
    line,
    column,
  };
}

// --- request loop -------------------------------------------------------------------------

/** The request in progress, so an error that escapes its promise can still fail it. */
let current = null;

async function handle(request) {
  const { id, file } = request;
  let abort;
  const aborted = new Promise((_, reject) => {
    abort = reject;
  });
  aborted.catch(() => {}); // only ever observed through the race below
  current = { id, abort };
  try {
    if (request.type === 'load') {
      const exported = await Promise.race([load(file), aborted]);
      send({ type: 'loaded', id, ...exported });
    } else {
      const result = await Promise.race([render(id, file, request.direction), aborted]);
      send({ type: 'rendered', id, ...result });
    }
  } catch (err) {
    send({ type: 'failed', id, error: failure(err, file) });
  } finally {
    if (current?.id === id) current = null;
  }
}

/** node-pg-migrate would crash on these; the bridge fails the request that caused them. */
function escaped(err) {
  if (current) {
    current.abort(err);
    return;
  }
  logger.error(`An error escaped a migration after it finished: ${format('%s', err?.stack ?? err)}`);
}
process.on('unhandledRejection', escaped);
process.on('uncaughtException', escaped);

const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
input.on('line', (line) => {
  if (!line.trim()) return;
  const message = JSON.parse(line);
  if (message.type === 'result') settleQuery(message);
  else if (message.type === 'load' || message.type === 'render') void handle(message);
  else send({ type: 'failed', id: message.id ?? null, error: { message: `Unknown request type ${message.type}` } });
});
// hmig closing stdin is the signal to stop.
input.on('close', () => process.exit(0));

const { version } = JSON.parse(readFileSync(require.resolve('node-pg-migrate/package.json'), 'utf8'));
send({ type: 'ready', node: process.versions.node, nodePgMigrate: version });
