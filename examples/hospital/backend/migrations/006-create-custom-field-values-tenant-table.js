/**
 * Migration: Custom field values
 * Date: 2025-11-03
 * Author: Backend team (configuration)
 *
 * What: creates `custom_field_values`, the value of one custom field on one record
 * (patient, encounter, lab order or user) of one hospital.
 *
 * Why: companion of 005-create-custom-fields-tables. Values are typed (text, number, boolean,
 * date, or a JSON array for multiselect) so they can be validated, sorted and filtered in SQL.
 *
 * Tenancy: tenant-owned; the composite (tenant_id, field_definition_id) foreign key keeps every
 * value in the same hospital as its field definition. `entity_id` is polymorphic (its table
 * depends on the definition's entity_type), so it has no foreign key: the application deletes a
 * record's values together with the record.
 *
 * File name: like 005, the `006-` prefix sorts first under node-pg-migrate 9; hmig.yml
 * `order:` runs it right after 005-create-custom-fields-tables.
 *
 * Uses the shorthands uuid_pk, created_at, updated_at and tenant_ref.
 *
 * Rollback: `down` drops the table and every stored value. Back up the table first
 * (pg_dump -t custom_field_values) if the values matter.
 */

exports.up = (pgm) => {
  pgm.createTable(
    'custom_field_values',
    {
      id: 'uuid_pk',
      tenant_id: { type: 'tenant_ref' },
      field_definition_id: { type: 'uuid', notNull: true },
      entity_id: {
        type: 'uuid',
        notNull: true,
        comment: 'Id of the patient, encounter, lab order or user, per the definition entity_type.',
      },
      value_text: { type: 'text' },
      value_number: { type: 'numeric' },
      value_boolean: { type: 'boolean' },
      value_date: { type: 'date' },
      value_json: {
        type: 'jsonb',
        check: "value_json IS NULL OR jsonb_typeof(value_json) = 'array'",
        comment: 'Selected option values of a multiselect field, as a JSON array of strings.',
      },
      updated_by: {
        type: 'uuid',
        references: 'users',
        onDelete: 'SET NULL',
      },
      created_at: 'created_at',
      updated_at: 'updated_at',
    },
    {
      constraints: {
        foreignKeys: {
          columns: ['tenant_id', 'field_definition_id'],
          references: 'custom_field_definitions (tenant_id, id)',
          referencesConstraintName: 'custom_field_values_definition_fkey',
          onDelete: 'CASCADE',
        },
      },
      comment: 'Value of one custom field on one record of one hospital.',
    },
  );

  // Exactly one typed value per row; clearing a field deletes the row.
  pgm.addConstraint('custom_field_values', 'custom_field_values_one_value_check', {
    check: 'num_nonnulls(value_text, value_number, value_boolean, value_date, value_json) = 1',
  });
  // One value per field and record.
  pgm.addConstraint('custom_field_values', 'custom_field_values_field_entity_key', {
    unique: [['tenant_id', 'field_definition_id', 'entity_id']],
  });

  // "All custom values of this record"; the unique constraint above already serves tenant_id
  // lookups and the cascade from custom_field_definitions.
  pgm.createIndex('custom_field_values', ['tenant_id', 'entity_id'], {
    name: 'idx_custom_field_values_tenant_entity',
  });
  // ON DELETE SET NULL from users.
  pgm.createIndex('custom_field_values', 'updated_by', {
    name: 'idx_custom_field_values_updated_by',
    where: 'updated_by IS NOT NULL',
  });

  pgm.createTrigger('custom_field_values', 'custom_field_values_set_updated_at', {
    when: 'BEFORE',
    operation: 'UPDATE',
    level: 'ROW',
    function: 'set_updated_at',
  });
};

exports.down = (pgm) => {
  pgm.dropTable('custom_field_values');
};
