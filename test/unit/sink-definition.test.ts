import { describe, expect, it } from 'vitest';
import { isViewkeeperError } from '../../src/errors.ts';
import { parseWriteJob } from '../../src/queues/write-behind-payload.ts';
import { defineSink, type SinkDefinition } from '../../src/sinks/define-sink.ts';
import { resolveFields, validateOp } from '../../src/sinks/fields.ts';
import { compareOrder, opOrder, orderOf } from '../../src/sinks/op-order.ts';

const votes: SinkDefinition = defineSink<unknown>()({
  name: 'votes',
  fields: { post_id: 'bigint', user_id: 'bigint', value: { type: 'integer', oneOf: [1, -1] } },
  apply: async () => {},
  refresh: { post_votes: (op) => ({ post_id: op.post_id }), trending_posts: 'full' },
});
const sinks = new Map([[votes.name, votes]]);

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

describe('defineSink', () => {
  it('resolves fields, refresh targets and defaults', () => {
    expect(votes.kind).toBe('sink');
    expect(votes.fields.map((field) => [field.name, field.type, field.nullable])).toEqual([
      ['post_id', 'bigint', false],
      ['user_id', 'bigint', false],
      ['value', 'integer', false],
    ]);
    expect(votes.refresh.map((target) => [target.view, target.kind])).toEqual([
      ['post_votes', 'params'],
      ['trending_posts', 'full'],
    ]);
  });

  it.each([
    [{ name: 'Bad Name', fields: { a: 'text' } }, /name must be 1–64 characters/],
    [{ name: 's', fields: {} }, /fields must be an object naming at least one field/],
    [{ name: 's', fields: { id: 'text' } }, /field name "id" is reserved/],
    [{ name: 's', fields: { at: 'text' } }, /field name "at" is reserved/],
    [{ name: 's', fields: { a: 'float' } }, /field a has type "float"; use one of bigint, integer/],
    [{ name: 's', fields: { a: { type: 'integer', oneOf: [] } } }, /oneOf must be a non-empty array/],
    [{ name: 's', fields: { a: 'text' }, apply: 'no' }, /apply must be a function/],
    [
      { name: 's', fields: { a: 'text' }, refresh: { v: 'partial' } },
      /refresh.v must be 'full', a function of an op, \{ lookup \} or \{ append \}/,
    ],
  ])('rejects a bad definition with E_SINK_DEFINITION: %j', (options, message) => {
    const error = thrown(() =>
      defineSink<unknown>()({ apply: async () => {}, ...(options as object) } as never),
    );
    expect(isViewkeeperError(error, 'E_SINK_DEFINITION')).toBe(true);
    expect(error.message).toMatch(message);
  });
});

describe('validateOp', () => {
  const fields = resolveFields('t', {
    n: 'bigint',
    i: 'integer',
    f: 'number',
    s: { type: 'text', maxLength: 5 },
    u: 'uuid',
    b: 'boolean',
    t: 'timestamptz',
    o: { type: 'bigint', nullable: true },
  });
  const good = {
    id: 'x',
    n: '9223372036854775807',
    i: -5,
    f: 1.5,
    s: 'hello',
    u: 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
    b: false,
    t: '2026-01-31T12:00:00Z',
    o: null,
  };

  it('accepts and normalises a good op (bigint as canonical string, uuid lower-cased)', () => {
    expect(validateOp('t', fields, { ...good, n: 42 }, 'op 0')).toEqual({
      ...good,
      n: '42',
      u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    });
  });

  it.each([
    [
      'n',
      '9223372036854775808',
      /field "n" is "9223372036854775808": expected a whole number between -2\^63 and 2\^63-1/,
    ],
    ['n', 1.5, /field "n" is 1.5/],
    ['i', '5', /field "i" is "5": expected a 32-bit whole number/],
    ['f', Number.NaN, /field "f" is null: expected a finite JSON number/],
    ['s', 'toolong', /field "s" is "toolong": expected a string of at most 5 characters/],
    ['u', 'not-a-uuid', /expected a UUID string/],
    ['b', 'true', /field "b" is "true": expected true or false/],
    ['t', 'yesterday', /expected an ISO-8601 timestamp/],
    ['i', null, /field "i" is null: expected a 32-bit whole number/],
  ])('rejects %s = %j', (field, value, message) => {
    const error = thrown(() => validateOp('t', fields, { ...good, [field]: value }, 'op 3'));
    expect(isViewkeeperError(error, 'E_BAD_PAYLOAD')).toBe(true);
    expect(error.message).toMatch(/^op 3 of sink "t": /);
    expect(error.message).toMatch(message);
  });

  it('names a missing field, an extra field and a bad id', () => {
    const { n: _n, ...missing } = good;
    expect(thrown(() => validateOp('t', fields, missing, 'op 0')).message).toBe(
      'op 0 of sink "t": missing field "n"',
    );
    expect(thrown(() => validateOp('t', fields, { ...good, zz: 1 }, 'op 0')).message).toMatch(
      /^op 0 of sink "t": unknown field "zz": the sink takes n, i, f, s, u, b, t, o$/,
    );
    expect(thrown(() => validateOp('t', fields, { ...good, id: 7 }, 'op 0')).message).toMatch(
      /"id" must be a non-empty string of at most 200 characters, got 7/,
    );
  });
});

describe('parseWriteJob', () => {
  const job = (data: unknown, name = 'votes', id = '12') => ({
    id,
    name,
    data,
    timestamp: 1_700_000_000_000,
  });

  it('returns validated ops stamped with enqueue time and order', () => {
    const { sink, ops } = parseWriteJob(
      sinks,
      job({
        ops: [
          { id: 'a', post_id: 1, user_id: '2', value: -1 },
          { id: 'b', post_id: 3, user_id: 4, value: 1 },
        ],
      }),
    );
    expect(sink).toBe(votes);
    expect(ops).toEqual([
      { id: 'a', post_id: '1', user_id: '2', value: -1 },
      { id: 'b', post_id: '3', user_id: '4', value: 1 },
    ]);
    expect(ops[0]!.at).toEqual(new Date(1_700_000_000_000));
    expect(compareOrder(orderOf(ops[0]!)!, orderOf(ops[1]!)!)).toBeLessThan(0);
  });

  it.each([
    [job({ ops: [{ id: 'a' }] }, 'nope'), 'E_SINK_UNKNOWN', 'unknown sink "nope": known sinks are votes'],
    [job(null), 'E_BAD_PAYLOAD', 'job data must be an object like {"ops": [...]}, got null'],
    [job({ ops: {} }), 'E_BAD_PAYLOAD', '"ops" must be a non-empty array of ops, got {}'],
    [
      job({ ops: [], extra: 1 }),
      'E_BAD_PAYLOAD',
      'unknown field "extra" in job data: write-behind jobs take only "ops"',
    ],
  ])('rejects %j', (input, code, message) => {
    const error = thrown(() => parseWriteJob(sinks, input));
    expect(isViewkeeperError(error, code as never)).toBe(true);
    expect(error.message).toBe(message);
  });

  it('rejects data over 1 MB before looking at it', () => {
    const ops = Array.from({ length: 20_000 }, (_, index) => ({
      id: `op-${index}-${'x'.repeat(40)}`,
      post_id: 1,
      user_id: 1,
      value: 1,
    }));
    expect(thrown(() => parseWriteJob(sinks, job({ ops }))).message).toMatch(
      /^job data is \d+ bytes, over the 1048576-byte limit for write-behind jobs: split the ops over several jobs$/,
    );
  });
});

describe('op order', () => {
  it('orders by job timestamp, then job id (numeric), then op index', () => {
    expect(compareOrder(opOrder('9', 100, 5), opOrder('10', 100, 0))).toBeLessThan(0);
    expect(compareOrder(opOrder('10', 99, 5), opOrder('9', 100, 0))).toBeLessThan(0);
    expect(compareOrder(opOrder('10', 100, 1), opOrder('10', 100, 2))).toBeLessThan(0);
    // Custom (non-numeric) job ids order by timestamp and op index only.
    expect(opOrder('custom-id', 100, 3)).toEqual({ ts: 100, seq: 3n });
  });
});
