import { describe, expect, it } from 'vitest';
import type { Database } from '../../demo/schema.ts';
import { mapChanges } from '../../src/capture/map-changes.ts';
import { capturedTables, fullyCapturedViews } from '../../src/capture/tables.ts';
import { functionBody, functionName } from '../../src/capture/triggers.ts';
import { defineView, resolveView } from '../../src/views/define-view.ts';

const query = () => ({ async *stream() {} });
const base = { name: 'v', shape: 'hash', key: 'v:{id}', params: { id: 'bigint' }, query } as const;

describe('defineView: capture', () => {
  it('resolves mappings per table and counts captured tables as dependsOn', () => {
    const view = defineView<Database>()({
      ...base,
      dependsOn: ['orgs'],
      capture: {
        users: { columns: ['id', 'id'], map: (row) => ({ id: row.id }) },
        posts: {
          columns: ['user_id'],
          lookup: async (_db, rows) => rows.map((row) => ({ id: row.user_id })),
        },
        votes: 'full',
      },
    });
    expect(view.capture.map((rule) => [rule.table, rule.kind, rule.columns])).toEqual([
      ['users', 'map', ['id']],
      ['posts', 'lookup', ['user_id']],
      ['votes', 'full', []],
    ]);
    expect(view.dependsOn).toEqual(['orgs', 'users', 'posts', 'votes']);
  });

  it('checks tables and columns against the database type', () => {
    defineView<Database>()({
      ...base,
      capture: {
        // @ts-expect-error: posts has no column nope
        posts: { columns: ['nope'], map: () => ({ id: 1 }) },
      },
    });
    defineView<Database>()({
      ...base,
      // @ts-expect-error: a mapping reads only the columns it declares
      capture: { posts: { columns: ['user_id'], map: (row) => ({ id: row.title }) } },
    });
    defineView<Database>()({
      ...base,
      capture: {
        // @ts-expect-error: no such table
        comments: 'full',
      },
    });
  });

  it.each([
    [
      'a mapping of the wrong kind',
      { users: 5 },
      /capture \.users must be 'full', \{ columns, map \} or \{ columns, lookup \}, got 5/,
    ],
    [
      'no columns',
      { users: { columns: [], map: () => ({}) } },
      /capture \.users\.columns must be a non-empty list of column names, got \[\]/,
    ],
    [
      'a column that is no identifier',
      { users: { columns: ['id; drop'], map: () => ({}) } },
      /columns must be a non-empty list/,
    ],
    [
      'both map and lookup',
      { users: { columns: ['id'], map: () => ({}), lookup: async () => [] } },
      /needs exactly one of map/,
    ],
    ['a table that is no identifier', { 'users"': 'full' }, /capture table "users\\"" is not a table name/],
  ])('refuses %s with one line', (_case, capture, message) => {
    expect(() => resolveView({ ...base, capture } as never)).toThrow(message);
  });

  it('a view without params can only be rebuilt whole on a change', () => {
    expect(() =>
      resolveView({
        name: 'top',
        shape: 'json',
        key: 'top',
        query,
        capture: { users: { columns: ['id'], map: () => ({}) } },
      } as never),
    ).toThrow(`view "top": capture .users: the view has no partial refresh, so its only mapping is 'full'`);
    expect(
      resolveView({ name: 'top', shape: 'json', key: 'top', query, capture: { users: 'full' } } as never)
        .capture,
    ).toHaveLength(1);
  });
});

describe('capture tables and triggers', () => {
  const a = resolveView({
    ...base,
    name: 'a',
    capture: { users: { columns: ['id'], map: (row: { id: string }) => ({ id: row.id }) } },
  } as never);
  const b = resolveView({
    ...base,
    name: 'b',
    dependsOn: ['orgs'],
    capture: { users: { columns: ['org_id'], map: (row: { org_id: string }) => ({ id: row.org_id }) } },
  } as never);

  it('a table records the union of the columns its views read', () => {
    const tables = capturedTables([a, b]);
    expect([...tables.values()].map((t) => [t.table, t.columns, t.rules.map((r) => r.view.name)])).toEqual([
      ['users', ['id', 'org_id'], ['a', 'b']],
    ]);
    expect([...fullyCapturedViews([a, b]).keys()]).toEqual(['a']);
  });

  it('function names stay within 63 bytes and differ per table', () => {
    expect(functionName('app.posts')).toBe('capture_app__posts');
    const long = functionName(`s.${'x'.repeat(62)}`);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).not.toBe(functionName(`s.${'x'.repeat(61)}y`));
    expect(functionBody(['user_id'])).toContain(
      'o."user_id"::text as k0 from vk_old o union select n."user_id"::text',
    );
  });

  it('maps changed rows to params, and a failing, refused or incomplete row to a failure plus a full rebuild', async () => {
    const boom = resolveView({
      ...base,
      name: 'boom',
      capture: {
        users: {
          columns: ['id'],
          map: (row: { id: string }) => {
            if (row.id === '2') throw new Error('no');
            return { id: row.id === '3' ? 'x' : row.id };
          },
        },
      },
    } as never);
    const at = new Date();
    const rows = ['1', '2', '3'].map((id) => ({
      table_name: 'users',
      op: 'UPDATE',
      row: { id },
      created_at: at,
    }));
    const { targets, failures } = await mapChanges(undefined as never, capturedTables([boom]), [
      ...rows,
      { table_name: 'users', op: 'UPDATE', row: {}, created_at: at },
      { table_name: 'other', op: 'INSERT', row: { id: '9' }, created_at: at },
    ]);
    expect(targets.map((t) => [t.view, t.params])).toEqual(
      expect.arrayContaining([
        ['boom', { id: '1' }],
        ['boom', undefined],
      ]),
    );
    expect(failures.map((f) => f.reason).sort()).toEqual([
      'capture.users of view boom: no',
      expect.stringMatching(/^capture\.users of view boom: param "id" of view "boom" is "x"/),
      'column id of users is not recorded by the installed triggers: run viewkeeper capture install',
    ]);
  });
});
