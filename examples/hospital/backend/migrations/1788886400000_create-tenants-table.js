/**
 * Migration: Tenants table creation
 * Date: 2023-03-15
 * Author: Backend team (hospital platform)
 *
 * What: creates `tenants`, one row per hospital (tenant) using the platform, and defines the
 * `tenant_ref` shorthand used by every tenant-owned table afterwards.
 *
 * Why: the system is multi-tenant; every tenant-owned row points at its hospital with
 * `tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE`, so offboarding a hospital
 * removes its data in one statement.
 *
 * File name: the prefix 1788886400000 was mistyped when this file was written right after the
 * initial migration (it decodes to 2026-09-08). It cannot be renamed, because pgmigrations.name
 * stores the file name, so by prefix it sorts after 1762003868921_update-users-and-add-roles-tables,
 * which needs this table. hmig.yml `order:` pins the sequence it really ran in: second.
 *
 * Uses the shorthands uuid_pk, created_at and updated_at from 1678886400000_initial-migration.
 *
 * Rollback: `down` drops `tenants`. Every tenant-owned table must be rolled back first.
 */

exports.shorthands = {
  // A mandatory link to the owning hospital. Deleting a tenant deletes everything it owns.
  tenant_ref: {
    type: 'uuid',
    notNull: true,
    references: 'tenants',
    onDelete: 'CASCADE',
  },
};

exports.up = (pgm) => {
  pgm.createTable(
    'tenants',
    {
      id: 'uuid_pk',
      name: {
        type: 'varchar(200)',
        notNull: true,
        check: "btrim(name) <> ''",
      },
      status: {
        type: 'varchar(20)',
        notNull: true,
        default: 'active',
        check: "status IN ('active', 'suspended', 'archived')",
        comment: 'active: in use; suspended: sign-in blocked; archived: offboarded, data kept',
      },
      contact_email: { type: 'varchar(254)' },
      contact_phone: { type: 'varchar(32)' },
      timezone: { type: 'varchar(64)', notNull: true, default: 'UTC' },
      created_at: 'created_at',
      updated_at: 'updated_at',
    },
    { comment: 'One row per hospital (tenant) using the platform.' },
  );

  pgm.createTrigger('tenants', 'tenants_set_updated_at', {
    when: 'BEFORE',
    operation: 'UPDATE',
    level: 'ROW',
    function: 'set_updated_at',
  });
};

exports.down = (pgm) => {
  pgm.dropTable('tenants');
};
