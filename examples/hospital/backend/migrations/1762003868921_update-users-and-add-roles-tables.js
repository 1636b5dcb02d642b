/**
 * Migration: User roles system
 * Date: 2025-11-01
 * Author: Backend team (identity)
 *
 * What:
 *   - makes `users` tenant-owned: adds `tenant_id` (NOT NULL, ON DELETE CASCADE), `phone` and
 *     `last_login_at`, and replaces the global unique e-mail index with one per hospital;
 *   - creates `roles` (per-hospital role names such as `doctor`, `nurse`, `lab_technician`);
 *   - creates `user_roles`, the many-to-many link between users and roles.
 *
 * Why: the same person may work for two hospitals with the same e-mail address, and each
 * hospital defines its own roles. Composite foreign keys on (tenant_id, ...) make it impossible
 * to give a user a role that belongs to another hospital.
 *
 * Data: `users.tenant_id` is added NOT NULL without a default. `users` was empty when this ran
 * (before launch); on a table with rows the ALTER fails, which is intended: nobody can guess the
 * right hospital for an existing account.
 *
 * Uses the shorthands uuid_pk, created_at and updated_at (1678886400000_initial-migration) and
 * tenant_ref (1788886400000_create-tenants-table).
 *
 * Rollback: `down` drops `user_roles` and `roles`, removes the new `users` columns and restores
 * the global unique e-mail index. Restoring that index fails if two hospitals now share an
 * e-mail address; resolve the duplicates first.
 */

exports.up = (pgm) => {
  pgm.addColumns('users', {
    tenant_id: { type: 'tenant_ref' },
    phone: { type: 'varchar(32)' },
    last_login_at: { type: 'timestamptz' },
  });

  // E-mail addresses are unique per hospital, no longer across the platform.
  pgm.dropIndex('users', 'lower(email)', { name: 'users_email_lower_key' });
  pgm.createIndex('users', ['tenant_id', 'lower(email)'], {
    name: 'users_tenant_email_lower_key',
    unique: true,
  });

  // Target of the composite foreign keys below; its index also serves tenant_id lookups.
  pgm.addConstraint('users', 'users_tenant_id_id_key', { unique: [['tenant_id', 'id']] });

  pgm.createTable(
    'roles',
    {
      id: 'uuid_pk',
      tenant_id: { type: 'tenant_ref' },
      name: {
        type: 'varchar(64)',
        notNull: true,
        check: "name ~ '^[a-z][a-z0-9_]*$'",
      },
      description: { type: 'text' },
      is_system: {
        type: 'boolean',
        notNull: true,
        default: false,
        comment: 'Built-in role seeded for every hospital; hospital admins cannot delete it.',
      },
      created_at: 'created_at',
      updated_at: 'updated_at',
    },
    { comment: 'Roles defined by each hospital (doctor, nurse, lab_technician, admin, ...).' },
  );

  pgm.addConstraint('roles', 'roles_tenant_id_name_key', { unique: [['tenant_id', 'name']] });
  // Target of the composite foreign key from user_roles.
  pgm.addConstraint('roles', 'roles_tenant_id_id_key', { unique: [['tenant_id', 'id']] });

  pgm.createTrigger('roles', 'roles_set_updated_at', {
    when: 'BEFORE',
    operation: 'UPDATE',
    level: 'ROW',
    function: 'set_updated_at',
  });

  pgm.createTable(
    'user_roles',
    {
      tenant_id: { type: 'tenant_ref' },
      user_id: { type: 'uuid', notNull: true },
      role_id: { type: 'uuid', notNull: true },
      granted_by: {
        type: 'uuid',
        references: 'users',
        onDelete: 'SET NULL',
        comment: 'Administrator who granted the role; NULL once that account is deleted.',
      },
      granted_at: 'created_at',
    },
    {
      constraints: {
        primaryKey: ['user_id', 'role_id'],
        foreignKeys: [
          {
            columns: ['tenant_id', 'user_id'],
            references: 'users (tenant_id, id)',
            referencesConstraintName: 'user_roles_tenant_user_fkey',
            onDelete: 'CASCADE',
          },
          {
            columns: ['tenant_id', 'role_id'],
            references: 'roles (tenant_id, id)',
            referencesConstraintName: 'user_roles_tenant_role_fkey',
            onDelete: 'CASCADE',
          },
        ],
      },
      comment: 'Which roles each user holds; both sides must belong to the same hospital.',
    },
  );

  // Tenant lookups, "who holds role X" and ON DELETE CASCADE from roles.
  pgm.createIndex('user_roles', ['tenant_id', 'role_id'], { name: 'idx_user_roles_tenant_role' });
  // ON DELETE SET NULL from users.
  pgm.createIndex('user_roles', 'granted_by', { name: 'idx_user_roles_granted_by' });
};

exports.down = (pgm) => {
  pgm.dropTable('user_roles');
  pgm.dropTable('roles');

  pgm.dropConstraint('users', 'users_tenant_id_id_key');
  pgm.dropIndex('users', ['tenant_id', 'lower(email)'], { name: 'users_tenant_email_lower_key' });
  pgm.dropColumns('users', ['tenant_id', 'phone', 'last_login_at']);

  pgm.createIndex('users', 'lower(email)', {
    name: 'users_email_lower_key',
    unique: true,
  });
};
