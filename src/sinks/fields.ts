import { MAX_OP_ID_LENGTH } from '../contract.ts';
import { ViewkeeperError } from '../errors.ts';
import { isInt32, show, toInt64String, UUID } from '../wire-values.ts';

// Op fields: what a sink declares, and the validation every op goes through — in the client before
// it is enqueued and again in the daemon, since other-language producers skip the client.

/** The types an op field can have. */
export type FieldType = 'bigint' | 'integer' | 'number' | 'text' | 'uuid' | 'boolean' | 'timestamptz';

/** A field: its type, or the type with constraints. */
export type FieldSpec =
  | FieldType
  | {
      type: FieldType;
      /** `null` is accepted (the field must still be present). @defaultValue false */
      nullable?: boolean;
      /** The only values accepted, after coercion (e.g. `[1, -1]`). */
      oneOf?: readonly (string | number | boolean)[];
      /** `text`: longest accepted string. @defaultValue 10000 */
      maxLength?: number;
    };

export type FieldsSpec = Record<string, FieldSpec>;

interface FieldTypeMap {
  /** Kept as a decimal string: ids beyond 2^53 stay exact. */
  bigint: string;
  integer: number;
  number: number;
  text: string;
  uuid: string;
  boolean: boolean;
  /** ISO-8601 string as sent. */
  timestamptz: string;
}

type TypeOf<S> = S extends FieldType ? S : S extends { type: infer T } ? T : never;
type ValueOf<S> = FieldTypeMap[TypeOf<S> & FieldType] | (S extends { nullable: true } ? null : never);

/** The validated fields of an op of a sink declaring `F`. */
export type FieldValues<F extends FieldsSpec> = { -readonly [K in keyof F]: ValueOf<F[K]> };

/** A validated op: its id and fields. */
export type OpOf<F extends FieldsSpec> = { id: string } & FieldValues<F>;

export interface ResolvedField {
  name: string;
  type: FieldType;
  nullable: boolean;
  oneOf: readonly (string | number | boolean)[] | undefined;
  maxLength: number;
}

export const FIELD_TYPES: readonly FieldType[] = [
  'bigint',
  'integer',
  'number',
  'text',
  'uuid',
  'boolean',
  'timestamptz',
];
export const DEFAULT_TEXT_MAX = 10_000;
/** Names an op field may not take: `id` is the op's idempotency key, `at` its enqueue time. */
export const RESERVED_FIELDS = ['id', 'at'] as const;
const FIELD_NAME = /^[a-z][a-z0-9_]{0,62}$/;

export const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$/;

const EXPECTED: Record<FieldType, string> = {
  bigint: 'a whole number between -2^63 and 2^63-1 (JSON number or decimal string)',
  integer: 'a 32-bit whole number',
  number: 'a finite JSON number',
  text: 'a string',
  uuid: 'a UUID string',
  boolean: 'true or false',
  timestamptz: 'an ISO-8601 timestamp with a time zone, like "2026-01-31T12:00:00Z"',
};

/** Checks and normalises a sink's field declarations. Throws `E_SINK_DEFINITION`. */
export function resolveFields(sink: string, fields: unknown): ResolvedField[] {
  const fail = (message: string): never => {
    throw new ViewkeeperError('E_SINK_DEFINITION', `sink ${JSON.stringify(sink)}: ${message}`);
  };
  if (
    fields === null ||
    typeof fields !== 'object' ||
    Array.isArray(fields) ||
    Object.keys(fields).length === 0
  ) {
    fail('fields must be an object naming at least one field, like { post_id: "bigint" }');
  }
  const out: ResolvedField[] = [];
  for (const [name, raw] of Object.entries(fields as Record<string, unknown>)) {
    if (!FIELD_NAME.test(name)) fail(`field name ${JSON.stringify(name)} must match [a-z][a-z0-9_]*`);
    if ((RESERVED_FIELDS as readonly string[]).includes(name)) {
      fail(`field name "${name}" is reserved (op id and enqueue time); name the field differently`);
    }
    const spec = (typeof raw === 'string' ? { type: raw } : raw) as Exclude<FieldSpec, FieldType> | null;
    if (spec === null || typeof spec !== 'object' || !FIELD_TYPES.includes(spec.type)) {
      fail(`field ${name} has type ${show(raw)}; use one of ${FIELD_TYPES.join(', ')}`);
    }
    const field = spec as Exclude<FieldSpec, FieldType>;
    const maxLength = field.maxLength ?? DEFAULT_TEXT_MAX;
    if (!Number.isInteger(maxLength) || maxLength < 1)
      fail(`field ${name}: maxLength must be a whole number ≥ 1`);
    if (field.oneOf !== undefined && (!Array.isArray(field.oneOf) || field.oneOf.length === 0)) {
      fail(`field ${name}: oneOf must be a non-empty array of allowed values`);
    }
    out.push({
      name,
      type: field.type,
      nullable: field.nullable ?? false,
      oneOf: field.oneOf,
      maxLength,
    });
  }
  return out;
}

/** The field's value after coercion, or undefined when it does not fit the type. */
function coerce(field: ResolvedField, value: unknown): unknown {
  switch (field.type) {
    case 'bigint':
      return toInt64String(value);
    case 'integer':
      return isInt32(value) ? value : undefined;
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
    case 'text':
      return typeof value === 'string' && value.length <= field.maxLength ? value : undefined;
    case 'uuid':
      return typeof value === 'string' && UUID.test(value) ? value.toLowerCase() : undefined;
    case 'boolean':
      return typeof value === 'boolean' ? value : undefined;
    case 'timestamptz':
      return typeof value === 'string' && ISO_TIMESTAMP.test(value) && !Number.isNaN(Date.parse(value))
        ? value
        : undefined;
  }
}

function expected(field: ResolvedField): string {
  if (field.oneOf) return `one of ${field.oneOf.map((value) => JSON.stringify(value)).join(', ')}`;
  if (field.type === 'text') return `a string of at most ${field.maxLength} characters`;
  return EXPECTED[field.type];
}

/**
 * What Postgres cannot store in a `text` (or `jsonb`) value, so that it is refused before any
 * statement is built rather than failing the batch later: NUL (`\u0000`), which text types reject
 * (SQLSTATE 22021), and an unpaired UTF-16 surrogate, which is not Unicode (pg would silently turn it
 * into U+FFFD in text and jsonb refuses its escape). Undefined when `value` is storable.
 */
export function unstorableText(value: string): string | undefined {
  if (value.includes('\u0000')) return 'contains a NUL character (\\u0000), which Postgres text cannot store';
  if (!value.isWellFormed())
    return 'contains an unpaired UTF-16 surrogate (not valid Unicode), which Postgres cannot store';
  return undefined;
}

/**
 * Validates one op of `sink` (`where` names it in messages, e.g. `op 3 ("a1")`): a plain object with a
 * string `id` and exactly the declared fields, each of its type. Returns the op with normalised values.
 * Throws `E_BAD_PAYLOAD` with one line naming the op, the field and the value.
 */
export function validateOp(
  sink: string,
  fields: ResolvedField[],
  raw: unknown,
  where: string,
  /** The prototype of the op returned (the daemon's ops share their job's). @defaultValue Object.prototype */
  prototype?: object,
): OpOf<FieldsSpec> {
  const bad = (message: string): never => {
    throw new ViewkeeperError('E_BAD_PAYLOAD', `${where} of sink ${JSON.stringify(sink)}: ${message}`);
  };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    bad(`must be an object, got ${show(raw)}`);
  const op = raw as Record<string, unknown>;
  const id = op.id;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_OP_ID_LENGTH) {
    bad(`"id" must be a non-empty string of at most ${MAX_OP_ID_LENGTH} characters, got ${show(id)}`);
  }
  const idProblem = unstorableText(id as string);
  if (idProblem) bad(`"id" ${show(id)} ${idProblem}`);
  const out: Record<string, unknown> = prototype ? Object.create(prototype) : {};
  out.id = id;
  for (const name of Object.keys(op)) {
    if (name !== 'id' && !fields.some((field) => field.name === name)) {
      bad(
        `unknown field ${JSON.stringify(name)}: the sink takes ${fields.map((field) => field.name).join(', ')}`,
      );
    }
  }
  for (const field of fields) {
    if (!Object.hasOwn(op, field.name) || op[field.name] === undefined) bad(`missing field "${field.name}"`);
    const given = op[field.name];
    if (given === null) {
      if (!field.nullable) bad(`field "${field.name}" is null: expected ${expected(field)}`);
      out[field.name] = null;
      continue;
    }
    if (field.type === 'text' && typeof given === 'string') {
      const problem = unstorableText(given);
      if (problem) bad(`field "${field.name}" ${show(given)} ${problem}`);
    }
    const value = coerce(field, given);
    if (value === undefined || (field.oneOf && !field.oneOf.includes(value as string | number | boolean))) {
      bad(`field "${field.name}" is ${show(given)}: expected ${expected(field)}`);
    }
    out[field.name] = value;
  }
  return out as OpOf<FieldsSpec>;
}
