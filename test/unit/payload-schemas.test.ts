import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { MAX_BULK_PARAMS } from '../../src/contract.ts';
import { payloadSchemas } from '../../src/queues/payload-schemas.ts';
import { parseRefreshJob } from '../../src/queues/refresh-payload.ts';
import { parseWriteJob } from '../../src/queues/write-behind-payload.ts';
import { defineSink } from '../../src/sinks/define-sink.ts';
import { defineView } from '../../src/views/define-view.ts';
import { createRegistry } from '../../src/views/registry.ts';

// The schemas `viewkeeper schema --json` prints must accept exactly what the daemon accepts: every
// payload below goes through both the generated schema (ajv, draft 2020-12) and the daemon's own
// parser, and they must agree, on top of the verdict written beside each payload.

const query = () => ({ stream: async function* () {} });
const everyParam = defineView<unknown>()({
  name: 'every_param',
  shape: 'hash',
  key: 'every_param:{b}',
  params: { b: 'bigint', i: 'integer', t: 'text', u: 'uuid', f: 'boolean' },
  query,
});
const fullOnly = defineView<unknown>()({ name: 'full_only', shape: 'json', key: 'full_only', query });
const everyField = defineSink<unknown>()({
  name: 'every_field',
  fields: {
    a: 'bigint',
    n: 'number',
    i: 'integer',
    t: { type: 'text', maxLength: 5 },
    u: 'uuid',
    f: 'boolean',
    ts: 'timestamptz',
    v: { type: 'integer', oneOf: [1, -1] },
    o: { type: 'bigint', nullable: true },
  },
  apply: async () => {},
});
const registry = createRegistry([everyParam, fullOnly, everyField]);
const sinks = new Map([[everyField.name, everyField]]);
const schemas = payloadSchemas([everyParam, fullOnly], [everyField]);

const ajv = new Ajv2020({ strict: true, strictTypes: false, allErrors: true });
const validators = {
  every_param: ajv.compile(schemas.refresh!.every_param!),
  full_only: ajv.compile(schemas.refresh!.full_only!),
  every_field: ajv.compile(schemas['write-behind']!.every_field!),
};

function daemonAccepts(job: string, data: unknown): boolean {
  try {
    if (job === 'every_field') parseWriteJob(sinks, { id: '1', name: job, data, timestamp: Date.now() });
    else parseRefreshJob(registry, job, data);
    return true;
  } catch {
    return false;
  }
}

const UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';
const params = { b: 1, i: 1, t: 'x', u: UUID, f: true };
const op = {
  id: 'op-1',
  a: 1,
  n: 1.5,
  i: 1,
  t: 'abc',
  u: UUID,
  f: true,
  ts: '2026-01-31T12:00:00Z',
  v: 1,
  o: null,
};
const withParam = (change: Record<string, unknown>) => ({ params: { ...params, ...change } });
const withField = (change: Record<string, unknown>) => ({ ops: [{ ...op, ...change }] });
const without = (record: Record<string, unknown>, key: string) =>
  Object.fromEntries(Object.entries(record).filter(([name]) => name !== key));

type Case = [what: string, job: keyof typeof validators, data: unknown, valid: boolean];
const cases: Case[] = [
  ['no params: a full rebuild', 'every_param', {}, true],
  ['a reason', 'every_param', { reason: 'profile edited' }, true],
  ['params of every type', 'every_param', { params }, true],
  ['bigint 2^63-1 as a string', 'every_param', withParam({ b: '9223372036854775807' }), true],
  ['bigint -2^63 as a string', 'every_param', withParam({ b: '-9223372036854775808' }), true],
  ['bigint with leading zeros', 'every_param', withParam({ b: '007' }), true],
  ['bigint 2^53-1 as a number', 'every_param', withParam({ b: 9007199254740991 }), true],
  ['bigint 2^63 as a string', 'every_param', withParam({ b: '9223372036854775808' }), false],
  ['bigint -2^63-1 as a string', 'every_param', withParam({ b: '-9223372036854775809' }), false],
  ['bigint 9999999999999999999', 'every_param', withParam({ b: '9999999999999999999' }), false],
  ['bigint 2^53 as a number', 'every_param', withParam({ b: 9007199254740992 }), false],
  ['bigint 1.5', 'every_param', withParam({ b: 1.5 }), false],
  ['bigint "1.5"', 'every_param', withParam({ b: '1.5' }), false],
  ['bigint " 1"', 'every_param', withParam({ b: ' 1' }), false],
  ['bigint ""', 'every_param', withParam({ b: '' }), false],
  ['integer 2^31-1 as a string', 'every_param', withParam({ i: '2147483647' }), true],
  ['integer -2^31 as a string', 'every_param', withParam({ i: '-2147483648' }), true],
  ['integer 2^31 as a string', 'every_param', withParam({ i: '2147483648' }), false],
  ['integer 2^31 as a number', 'every_param', withParam({ i: 2147483648 }), false],
  ['integer "1e3"', 'every_param', withParam({ i: '1e3' }), false],
  ['text of 1024 characters', 'every_param', withParam({ t: 'x'.repeat(1024) }), true],
  ['text of 1025 characters', 'every_param', withParam({ t: 'x'.repeat(1025) }), false],
  ['text with a NUL', 'every_param', withParam({ t: 'a\u0000b' }), false],
  ['uuid in capitals', 'every_param', withParam({ u: UUID.toUpperCase() }), true],
  ['uuid that is not one', 'every_param', withParam({ u: 'not-a-uuid' }), false],
  ['boolean as "false"', 'every_param', withParam({ f: 'false' }), true],
  ['boolean as "yes"', 'every_param', withParam({ f: 'yes' }), false],
  ['boolean as 1', 'every_param', withParam({ f: 1 }), false],
  ['a missing param', 'every_param', { params: without(params, 'u') }, false],
  ['an unknown param', 'every_param', withParam({ extra: 1 }), false],
  ['params null', 'every_param', { params: null }, false],
  ['params a string', 'every_param', { params: 'b=1' }, false],
  ['a reason of 201 characters', 'every_param', { reason: 'r'.repeat(201) }, false],
  ['a reason that is a number', 'every_param', { reason: 5 }, false],
  ['a misspelt "param"', 'every_param', { param: params }, false],
  ['data that is an array', 'every_param', [params], false],
  ['data null', 'every_param', null, false],
  ['a full rebuild of a view without params', 'full_only', { reason: 'nightly' }, true],
  ['params for a view without params', 'full_only', { params: {} }, false],
  ['an op of every type', 'every_field', withField({}), true],
  ['two ops', 'every_field', { ops: [op, { ...op, id: 'op-2' }] }, true],
  ['bigint field as a string', 'every_field', withField({ a: '-42' }), true],
  ['nullable field with a value', 'every_field', withField({ o: '12' }), true],
  ['timestamp with a space and an offset', 'every_field', withField({ ts: '2026-01-31 12:00+01' }), true],
  ['timestamp with microseconds', 'every_field', withField({ ts: '2026-01-31T12:00:00.123456+05:30' }), true],
  ['timestamp without a zone', 'every_field', withField({ ts: '2026-01-31T12:00:00' }), false],
  ['a date only', 'every_field', withField({ ts: '2026-01-31' }), false],
  ['integer field as a string', 'every_field', withField({ i: '1' }), false],
  ['number field as a string', 'every_field', withField({ n: '1.5' }), false],
  ['text over its maxLength', 'every_field', withField({ t: 'abcdef' }), false],
  ['a value outside oneOf', 'every_field', withField({ v: 2 }), false],
  ['null in a field that is not nullable', 'every_field', withField({ a: null }), false],
  ['a nullable field left out', 'every_field', { ops: [without(op, 'o')] }, false],
  ['boolean field as "true"', 'every_field', withField({ f: 'true' }), false],
  ['an op without id', 'every_field', { ops: [without(op, 'id')] }, false],
  ['an empty id', 'every_field', withField({ id: '' }), false],
  ['an id of 201 characters', 'every_field', withField({ id: 'i'.repeat(201) }), false],
  ['an id that is a number', 'every_field', withField({ id: 7 }), false],
  ['an unknown field', 'every_field', withField({ extra: 1 }), false],
  ['no ops', 'every_field', { ops: [] }, false],
  ['no "ops" at all', 'every_field', {}, false],
  ['an unknown top-level field', 'every_field', { ...withField({}), ids: [] }, false],
];

describe('payload JSON Schemas', () => {
  it.each(
    cases.map(
      ([what, job, data, valid]) =>
        [`${what}: ${valid ? 'accepted' : 'refused'} by schema and daemon`, job, data, valid] as const,
    ),
  )('%s', (_name, job, data, valid) => {
    const validate = validators[job];
    expect(validate(data), JSON.stringify(validate.errors)).toBe(valid);
    expect(daemonAccepts(job, data)).toBe(valid);
  });

  // Bulk arrays are part of the public contract; the daemon's side lands separately, so these
  // cases are checked against the schema only.
  it.each([
    ['one params object in an array', [params], true],
    [`${MAX_BULK_PARAMS} params objects`, Array.from({ length: MAX_BULK_PARAMS }, () => params), true],
    [
      `${MAX_BULK_PARAMS + 1} params objects`,
      Array.from({ length: MAX_BULK_PARAMS + 1 }, () => params),
      false,
    ],
    ['an empty array', [], false],
    ['an array with one bad element', [params, { ...params, b: 'x' }], false],
  ])('bulk params, %s: valid is %s', (_what, list, valid) => {
    expect(validators.every_param({ params: list })).toBe(valid);
  });

  it('are keyed by queue and job name and declare draft 2020-12', () => {
    expect(Object.keys(schemas)).toEqual(['refresh', 'write-behind']);
    expect(Object.keys(schemas.refresh!)).toEqual(['every_param', 'full_only']);
    for (const schema of [schemas.refresh!.every_param!, schemas['write-behind']!.every_field!]) {
      expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    }
  });
});
