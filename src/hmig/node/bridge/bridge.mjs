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
import { MigrationBuilder } from 'node-pg-migrate/migrationBuilder';
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
}

// --- pgm.db proxied to hmig -----------------------------------------------------------------

let nextQueryId = 1;
const pendingQueries = new Map();

/** Encode a value the way pg's client would send it: text, null, or bytes. */
function encodeParameter(value) {
  const prepared = pgUtils.prepareValue(value);
  if (Buffer.isBuffer(prepared)) return { $hmig: 'bytes', value: prepared.toString('hex') };
  return prepared;
}

/** Turn hmig's JSON row values back into what pg's type parsers would have produced. */
function decodeValue(value) {
  if (Array.isArray(value)) return value.map(decodeValue);
  if (value === null || typeof value !== 'object') return value;
  if (typeof value.$hmig === 'string') {
    switch (value.$hmig) {
      case 'bytes':
        return Buffer.from(value.value, 'hex');
      case 'timestamp':
        return new Date(value.value);
      case 'date': {
        // pg-types parses `date` as local midnight.
        const [y, m, d] = value.value.split('-').map(Number);
        return new Date(y, m - 1, d);
      }
      case 'float':
        return Number(value.value);
      case 'object':
        return decodeObject(value.value);
      default:
        return value.value;
    }
  }
  return decodeObject(value);
}

function decodeObject(value) {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decodeValue(v)]));
}

/** An Error shaped like pg's DatabaseError, so migrations can inspect `code`. */
function databaseError(qid, error) {
  const err = new Error(error.message);
  err.name = 'error';
  for (const key of ['severity', 'code', 'detail', 'hint', 'position']) {
    if (error[key] !== undefined && error[key] !== null) err[key] = error[key];
  }
  Object.defineProperty(err, 'hmigQueryId', { value: qid, enumerable: false });
  return err;
}

/** The `db` node-pg-migrate's runner passes to MigrationBuilder, bound to one render. */
function makeDb(renderId) {
  const query = (queryTextOrConfig, values) =>
    new Promise((resolve, reject) => {
      const isConfig = typeof queryTextOrConfig === 'object' && queryTextOrConfig !== null;
      const text = isConfig ? queryTextOrConfig.text : queryTextOrConfig;
      const params = isConfig ? (queryTextOrConfig.values ?? values) : values;
      if (typeof text !== 'string') {
        reject(new TypeError('Client was passed a null or undefined query'));
        return;
      }
      if (params !== undefined && params !== null && !Array.isArray(params)) {
        reject(new TypeError('Query values must be an array'));
        return;
      }
      const qid = nextQueryId++;
      pendingQueries.set(qid, { text, resolve, reject });
      send({
        type: 'query',
        id: renderId,
        qid,
        text,
        values: (params ?? []).map(encodeParameter),
      });
    });
  const select = async (queryTextOrConfig, values) => {
    const { rows } = await query(queryTextOrConfig, values);
    return rows;
  };
  return { query, select };
}

function settleQuery(message) {
  const pending = pendingQueries.get(message.qid);
  if (!pending) return;
  pendingQueries.delete(message.qid);
  if (message.ok) {
    pending.resolve({
      rows: message.rows.map(decodeObject),
      rowCount: message.rowCount,
      fields: message.fields.map((name) => ({ name })),
    });
    return;
  }
  const err = databaseError(message.qid, message.error);
  // Same report node-pg-migrate's db.ts logs before rethrowing.
  logger.error(`Error executing:\n${pending.text}\n${err}\n`);
  pending.reject(err);
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
      await Promise.race([load(file), aborted]);
      send({ type: 'loaded', id });
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

const require = createRequire(import.meta.url);
const { version } = JSON.parse(readFileSync(require.resolve('node-pg-migrate/package.json'), 'utf8'));
send({ type: 'ready', node: process.versions.node, nodePgMigrate: version });
