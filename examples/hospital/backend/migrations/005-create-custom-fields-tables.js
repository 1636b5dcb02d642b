/**
 * Migration: Custom fields support (definitions)
 * Date: 2025-11-03
 * Author: Backend team (configuration)
 *
 * What: creates `custom_field_definitions` (the extra fields a hospital adds to patients,
 * encounters, lab orders or users) and `custom_field_options` (the choices of `select` and
 * `multiselect` fields). The values live in `custom_field_values`
 * (006-create-custom-field-values-tenant-table).
 *
 * Why: hospitals need to record things the core schema does not model (insurance plan codes,
 * preferred language, ward-specific flags) without a schema change per hospital.
 *
 * Tenancy: both tables are tenant-owned. `custom_field_options` points at its definition with a
 * composite (tenant_id, field_definition_id) foreign key, so an option can never belong to
 * another hospital's field.
 *
 * File name: the `005-` prefix predates the timestamp convention. node-pg-migrate 9 reads it as
 * the number 5 and would sort this file before everything else, before `tenants` exists;
 * hmig.yml `order:` runs it after 1762003868921_update-users-and-add-roles-tables.
 *
 * Uses the shorthands uuid_pk, created_at, updated_at and tenant_ref.
 *
 * Rollback: `down` drops both tables, and with them every option. Roll back
 * 006-create-custom-field-values-tenant-table first.
 */

exports.up = (pgm) => {
  pgm.createTable(
    'custom_field_definitions',
    {
      id: 'uuid_pk',
      tenant_id: { type: 'tenant_ref' },
      entity_type: {
        type: 'varchar(32)',
        notNull: true,
        check: "entity_type IN ('patient', 'encounter', 'lab_order', 'user')",
        comment: 'Which kind of record the field is shown on.',
      },
      field_key: {
        type: 'varchar(64)',
        notNull: true,
        check: "field_key ~ '^[a-z][a-z0-9_]*$'",
        comment: 'Stable machine name used by the API and exports; the label may change.',
      },
      label: { type: 'varchar(200)', notNull: true },
      data_type: {
        type: 'varchar(16)',
        notNull: true,
        check: "data_type IN ('text', 'number', 'boolean', 'date', 'select', 'multiselect')",
      },
      is_required: { type: 'boolean', notNull: true, default: false },
      is_active: { type: 'boolean', notNull: true, default: true },
      sort_order: { type: 'integer', notNull: true, default: 0, check: 'sort_order >= 0' },
      help_text: { type: 'text' },
      created_at: 'created_at',
      updated_at: 'updated_at',
    },
    { comment: 'Extra fields each hospital defines for its own records.' },
  );

  pgm.addConstraint('custom_field_definitions', 'custom_field_definitions_tenant_entity_field_key', {
    unique: [['tenant_id', 'entity_type', 'field_key']],
  });
  // Target of the composite foreign keys from custom_field_options and custom_field_values.
  pgm.addConstraint('custom_field_definitions', 'custom_field_definitions_tenant_id_id_key', {
    unique: [['tenant_id', 'id']],
  });

  pgm.createTrigger('custom_field_definitions', 'custom_field_definitions_set_updated_at', {
    when: 'BEFORE',
    operation: 'UPDATE',
    level: 'ROW',
    function: 'set_updated_at',
  });

  pgm.createTable(
    'custom_field_options',
    {
      id: 'uuid_pk',
      tenant_id: { type: 'tenant_ref' },
      field_definition_id: { type: 'uuid', notNull: true },
      value: {
        type: 'varchar(100)',
        notNull: true,
        check: "btrim(value) <> ''",
      },
      label: { type: 'varchar(200)', notNull: true },
      sort_order: { type: 'integer', notNull: true, default: 0, check: 'sort_order >= 0' },
      is_active: { type: 'boolean', notNull: true, default: true },
      created_at: 'created_at',
    },
    {
      constraints: {
        foreignKeys: {
          columns: ['tenant_id', 'field_definition_id'],
          references: 'custom_field_definitions (tenant_id, id)',
          referencesConstraintName: 'custom_field_options_definition_fkey',
          onDelete: 'CASCADE',
        },
      },
      comment: 'Allowed choices of select and multiselect custom fields.',
    },
  );

  pgm.addConstraint('custom_field_options', 'custom_field_options_value_key', {
    unique: [['field_definition_id', 'value']],
  });

  // Tenant lookups and ON DELETE CASCADE from custom_field_definitions.
  pgm.createIndex('custom_field_options', ['tenant_id', 'field_definition_id'], {
    name: 'idx_custom_field_options_tenant_definition',
  });
};

exports.down = (pgm) => {
  pgm.dropTable('custom_field_options');
  pgm.dropTable('custom_field_definitions');
};
