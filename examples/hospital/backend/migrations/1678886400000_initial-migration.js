/**
 * Migration: Initial schema setup
 * Date: 2023-03-15
 * Author: Backend team (hospital platform)
 *
 * What: creates the shared `set_updated_at()` trigger function and the first `users` table
 * (login identity only; tenant membership and roles come in
 * 1762003868921_update-users-and-add-roles-tables).
 *
 * Why: every later table keeps an `updated_at` column maintained by the same trigger function,
 * and every later `.js` migration builds its columns from the shorthands defined here.
 *
 * Shorthands: node-pg-migrate merges the `shorthands` export of each migration file into the
 * ones before it, so `uuid_pk`, `created_at` and `updated_at` are available as column types in
 * every migration that runs after this one (see hmig.yml `order:`).
 *
 * No extensions: ids use gen_random_uuid(), which is built in since PostgreSQL 13.
 *
 * Rollback: `down` drops `users` and the trigger function. Run it only after every later
 * migration has been rolled back (later tables use set_updated_at()).
 */

// `pgm` does not exist when this module is loaded, so a shorthand cannot call pgm.func().
// node-pg-migrate treats any `{ literal: true, value }` object as raw SQL (that is what
// pgm.func() returns), so this builds the same value without importing node-pg-migrate.
const sqlLiteral = (value) => ({ literal: true, value, toString: () => value });

exports.shorthands = {
  uuid_pk: {
    type: 'uuid',
    primaryKey: true,
    default: sqlLiteral('gen_random_uuid()'),
  },
  created_at: {
    type: 'timestamptz',
    notNull: true,
    default: sqlLiteral('now()'),
  },
  updated_at: {
    type: 'timestamptz',
    notNull: true,
    default: sqlLiteral('now()'),
  },
};

exports.up = (pgm) => {
  // Keeps updated_at honest; attached with a BEFORE UPDATE trigger on each table.
  pgm.createFunction(
    'set_updated_at',
    [],
    { returns: 'trigger', language: 'plpgsql', replace: true },
    `
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
`,
  );

  pgm.createTable(
    'users',
    {
      id: 'uuid_pk',
      email: {
        type: 'varchar(254)',
        notNull: true,
        check: "position('@' in email) > 1",
      },
      password_hash: { type: 'text', notNull: true },
      first_name: { type: 'varchar(100)', notNull: true },
      last_name: { type: 'varchar(100)', notNull: true },
      is_active: { type: 'boolean', notNull: true, default: true },
      created_at: 'created_at',
      updated_at: 'updated_at',
    },
    { comment: 'Staff accounts that can sign in to the hospital management system.' },
  );

  // Case-insensitive uniqueness without the citext extension.
  pgm.createIndex('users', 'lower(email)', {
    name: 'users_email_lower_key',
    unique: true,
  });

  pgm.createTrigger('users', 'users_set_updated_at', {
    when: 'BEFORE',
    operation: 'UPDATE',
    level: 'ROW',
    function: 'set_updated_at',
  });
};

exports.down = (pgm) => {
  // Dropping the table drops its index and trigger with it.
  pgm.dropTable('users');
  pgm.dropFunction('set_updated_at', []);
};
