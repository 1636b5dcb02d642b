/**
 * Migration: User verification
 * Date: 2025-11-01
 * Author: Backend team (identity)
 *
 * What: creates `user_verifications` (one-time tokens for e-mail verification, password reset
 * and staff invitations) and adds `users.email_verified_at`.
 *
 * Why: staff must confirm their e-mail address before they can see patient data, and password
 * resets need a single-use, expiring token. Only a SHA-256 hash of each token is stored, so a
 * database dump never contains a usable link.
 *
 * Tenancy: a verification belongs to one user and is removed with it (ON DELETE CASCADE); the
 * user carries the tenant (users.tenant_id, added by the next migration).
 *
 * Uses the shorthands uuid_pk and created_at from 1678886400000_initial-migration.
 *
 * Rollback: `down` drops `user_verifications` and `users.email_verified_at`. Outstanding tokens
 * are lost, so users have to request a new link.
 */

exports.up = (pgm) => {
  pgm.addColumns('users', {
    email_verified_at: {
      type: 'timestamptz',
      comment: 'When the user confirmed their e-mail address; NULL until then.',
    },
  });

  pgm.createTable(
    'user_verifications',
    {
      id: 'uuid_pk',
      user_id: {
        type: 'uuid',
        notNull: true,
        references: 'users',
        onDelete: 'CASCADE',
      },
      purpose: {
        type: 'varchar(32)',
        notNull: true,
        check: "purpose IN ('email_verification', 'password_reset', 'invitation')",
      },
      token_hash: {
        type: 'bytea',
        notNull: true,
        unique: true,
        check: 'octet_length(token_hash) = 32',
        comment: 'SHA-256 of the token sent to the user; the token itself is never stored.',
      },
      expires_at: { type: 'timestamptz', notNull: true },
      consumed_at: { type: 'timestamptz' },
      created_at: 'created_at',
    },
    {
      comment: 'Single-use, expiring tokens for e-mail verification, password reset and invitations.',
    },
  );

  pgm.addConstraint('user_verifications', 'user_verifications_expiry_check', {
    check: 'expires_at > created_at',
  });
  pgm.addConstraint('user_verifications', 'user_verifications_consumed_check', {
    check: 'consumed_at IS NULL OR consumed_at >= created_at',
  });

  // Supports ON DELETE CASCADE from users and "list this user's tokens".
  pgm.createIndex('user_verifications', 'user_id', { name: 'idx_user_verifications_user_id' });

  // At most one outstanding token per user and purpose: issuing a new one must consume the old.
  pgm.createIndex('user_verifications', ['user_id', 'purpose'], {
    name: 'user_verifications_one_open_per_purpose',
    unique: true,
    where: 'consumed_at IS NULL',
  });
};

exports.down = (pgm) => {
  pgm.dropTable('user_verifications');
  pgm.dropColumns('users', ['email_verified_at']);
};
