import {
  MAX_BULK_PARAMS,
  MAX_OP_ID_LENGTH,
  MAX_REASON_LENGTH,
  QUEUES,
  REFRESH_PAYLOAD_LIMIT_BYTES,
  WRITE_PAYLOAD_LIMIT_BYTES,
} from '../contract.ts';
import type { SinkDefinition } from '../sinks/define-sink.ts';
import { type FieldType, ISO_TIMESTAMP, type ResolvedField } from '../sinks/fields.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import { MAX_TEXT_PARAM, type ParamType } from '../views/params.ts';

// JSON Schemas (draft 2020-12) of the job data each view and sink accepts, generated from the
// definitions, so that producers in any language validate before they enqueue. They say what
// parseRefreshJob / parseWriteJob accept (test/unit/payload-schemas.test.ts runs both on the same
// payloads); what JSON Schema cannot say — the size limit, op ids unique within a job — is in the
// description. Patterns use [0-9], not \d, which some engines read as any Unicode digit.

export type JsonSchema = Record<string, unknown>;

const DRAFT = 'https://json-schema.org/draft/2020-12/schema';
const INT32 = { type: 'integer', minimum: -2147483648, maximum: 2147483647 };
const SAFE_INTEGER = { type: 'integer', minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER };
const NO_NUL = '^[^\\u0000]*$';
const UUID = { type: 'string', pattern: '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$' };

/** Strings of 1 to bound.length digits (leading zeros allowed) whose value is at most `bound`. */
function digitsAtMost(bound: string): string {
  const parts = [`[0-9]{1,${bound.length - 1}}`];
  for (let i = 0; i < bound.length; i++) {
    const digit = Number(bound[i]);
    const rest = bound.length - i - 1;
    if (digit > 0) parts.push(`${bound.slice(0, i)}[0-${digit - 1}]${rest > 0 ? `[0-9]{${rest}}` : ''}`);
  }
  parts.push(bound);
  return `(${parts.join('|')})`;
}

/** A decimal string in [-(max+1), max], as the daemon's 64-bit and 32-bit checks read strings. */
function decimalString(max: bigint): JsonSchema {
  return { type: 'string', pattern: `^(${digitsAtMost(String(max))}|-${digitsAtMost(String(max + 1n))})$` };
}

const BIGINT: JsonSchema = {
  description: 'a whole number between -2^63 and 2^63-1: a JSON number (up to 2^53-1) or a decimal string',
  anyOf: [SAFE_INTEGER, decimalString(2n ** 63n - 1n)],
};

const PARAM_SCHEMAS: Record<ParamType, JsonSchema> = {
  bigint: BIGINT,
  integer: {
    description: 'a 32-bit whole number (number or decimal string)',
    anyOf: [INT32, decimalString(2n ** 31n - 1n)],
  },
  text: { type: 'string', maxLength: MAX_TEXT_PARAM, pattern: NO_NUL },
  uuid: UUID,
  boolean: { anyOf: [{ type: 'boolean' }, { enum: ['true', 'false'] }] },
};

function fieldSchema(field: ResolvedField): JsonSchema {
  const base: Record<FieldType, JsonSchema> = {
    bigint: BIGINT,
    integer: INT32,
    number: { type: 'number' },
    text: { type: 'string', maxLength: field.maxLength, pattern: NO_NUL },
    uuid: UUID,
    boolean: { type: 'boolean' },
    timestamptz: {
      type: 'string',
      description: 'an ISO-8601 timestamp with a time zone, like "2026-01-31T12:00:00Z"',
      pattern: ISO_TIMESTAMP.source.replaceAll('\\d', '[0-9]'),
    },
  };
  let schema = base[field.type];
  if (field.oneOf) {
    // bigint values are compared in canonical decimal form, so 7 and "7" are the same value.
    const values =
      field.type === 'bigint' ? field.oneOf.flatMap((value) => [String(value), Number(value)]) : field.oneOf;
    schema = { ...schema, enum: [...new Set(values)] };
  }
  return field.nullable ? { anyOf: [schema, { type: 'null' }] } : schema;
}

/** The schema of a refresh job's data for `view` (job name = the view's name). */
export function refreshJobSchema(view: ViewDefinition): JsonSchema {
  const names = Object.keys(view.params ?? {});
  const reason = {
    type: 'string',
    maxLength: MAX_REASON_LENGTH,
    description: 'why, for logs and run history',
  };
  const limit = `Job data of at most ${REFRESH_PAYLOAD_LIMIT_BYTES} bytes of JSON.`;
  const head = (description: string) => ({
    $schema: DRAFT,
    title: `refresh ${view.name}`,
    description: `Data of a job named "${view.name}" on the BullMQ queue "${QUEUES.refresh}"${description} ${limit}`,
    type: 'object',
    additionalProperties: false,
  });
  if (names.length === 0) {
    return { ...head(': a full rebuild (the view takes no params).'), properties: { reason } };
  }
  return {
    ...head(
      '. No params = full rebuild; an object = the keys those params select; an array = many of them in one job.',
    ),
    properties: {
      params: {
        anyOf: [
          { $ref: '#/$defs/params' },
          { type: 'array', minItems: 1, maxItems: MAX_BULK_PARAMS, items: { $ref: '#/$defs/params' } },
        ],
      },
      reason,
    },
    $defs: {
      params: {
        type: 'object',
        properties: Object.fromEntries(names.map((name) => [name, PARAM_SCHEMAS[view.params![name]!]])),
        required: names,
        additionalProperties: false,
      },
    },
  };
}

/** The schema of a write-behind job's data for `sink` (job name = the sink's name); `$defs.op` is one op. */
export function writeJobSchema(sink: SinkDefinition): JsonSchema {
  return {
    $schema: DRAFT,
    title: `write-behind ${sink.name}`,
    description: `Data of a job named "${sink.name}" on the BullMQ queue "${QUEUES.writeBehind}": one or many ops, each id unique within the job. At most ${WRITE_PAYLOAD_LIMIT_BYTES} bytes of JSON.`,
    type: 'object',
    properties: { ops: { type: 'array', minItems: 1, items: { $ref: '#/$defs/op' } } },
    required: ['ops'],
    additionalProperties: false,
    $defs: {
      op: {
        type: 'object',
        properties: {
          id: {
            type: 'string',
            minLength: 1,
            maxLength: MAX_OP_ID_LENGTH,
            description: "the op's idempotency key, chosen by the producer",
          },
          ...Object.fromEntries(sink.fields.map((field) => [field.name, fieldSchema(field)])),
        },
        required: ['id', ...sink.fields.map((field) => field.name)],
        additionalProperties: false,
      },
    },
  };
}

/** Every schema, by queue and then by job name: what `viewkeeper schema --json` prints. */
export function payloadSchemas(
  views: Iterable<ViewDefinition>,
  sinks: Iterable<SinkDefinition>,
): Record<string, Record<string, JsonSchema>> {
  const byName = <T extends { name: string }>(items: Iterable<T>) =>
    [...items].sort((a, b) => a.name.localeCompare(b.name));
  return {
    [QUEUES.refresh]: Object.fromEntries(byName(views).map((view) => [view.name, refreshJobSchema(view)])),
    [QUEUES.writeBehind]: Object.fromEntries(byName(sinks).map((sink) => [sink.name, writeJobSchema(sink)])),
  };
}

/** One line per field for the readable summary: `value: integer, one of 1, -1`. */
export function describeField(field: ResolvedField): string {
  const type = field.type === 'text' ? `text (≤ ${field.maxLength} chars)` : field.type;
  const values = field.oneOf
    ? `, one of ${field.oneOf.map((value) => JSON.stringify(value)).join(', ')}`
    : '';
  return `${field.name}: ${type}${values}${field.nullable ? ' or null' : ''}`;
}
