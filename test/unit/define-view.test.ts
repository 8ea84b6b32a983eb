import { describe, expect, it } from 'vitest';
import { defineView } from '../../src/views/define-view.ts';

const query = () => ({ async *stream() {} });

describe('defineView: batchPartials', () => {
  it('takes the one param as the batch column when the key template uses it', () => {
    const view = defineView()({
      name: 'stats',
      shape: 'hash',
      key: 'stats:{user_id}',
      params: { user_id: 'bigint' },
      batchPartials: true,
      query,
    });
    expect(view.batchColumn).toBe('user_id');
    expect(
      defineView()({ name: 'plain', shape: 'hash', key: 'p:{id}', params: { id: 'bigint' }, query }),
    ).toMatchObject({ batchColumn: undefined });
  });

  it('zset views batch by a param of the member template', () => {
    const view = defineView()({
      name: 'ranked',
      shape: 'zset',
      key: 'ranked',
      member: '{post_id}',
      score: 'score',
      params: { post_id: 'bigint' },
      batchPartials: true,
      query,
    });
    expect(view.batchColumn).toBe('post_id');
  });

  it.each([
    ['two params', { a: 'bigint', b: 'bigint' }, 'k:{a}:{b}'],
    ['no params', undefined, 'k:{a}'],
    ['a param the key does not use', { other: 'bigint' }, 'k:{a}'],
  ] as const)('refuses %s with a one-line reason naming the params', (_case, params, key) => {
    expect(() =>
      defineView()({ name: 'bad', shape: 'hash', key, params, batchPartials: true, query }),
    ).toThrow(/^view "bad": batchPartials needs exactly one param used by the key template, got params \[/);
  });

  it('refuses a non-boolean', () => {
    expect(() =>
      defineView()({
        name: 'bad',
        shape: 'hash',
        key: 'k:{a}',
        params: { a: 'bigint' },
        batchPartials: 'yes' as unknown as boolean,
        query,
      }),
    ).toThrow('view "bad": batchPartials must be true or false, got "yes"');
  });
});

describe('defineView: list and set views', () => {
  const list = {
    name: 'recent',
    shape: 'list',
    key: 'recent:{user_id}',
    orderBy: 'at',
    maxLength: 20,
    query,
  } as const;

  it('resolves a list with its order and cap, and a set with its member template', () => {
    expect(defineView()(list)).toMatchObject({
      shape: 'list',
      list: { orderBy: ['at'], order: 'desc', maxLength: 20 },
      element: undefined,
    });
    const set = defineView()({
      name: 'voters',
      shape: 'set',
      key: 'voters:{post_id}',
      member: '{user_id}',
      query,
    });
    expect(set.member?.columns).toEqual(['user_id']);
  });

  it.each([
    ['no orderBy', { orderBy: undefined }, 'view "recent": a list view needs orderBy'],
    ['an empty orderBy', { orderBy: [] }, 'view "recent": a list view needs orderBy'],
    [
      'no maxLength',
      { maxLength: undefined },
      'view "recent": maxLength must be a whole number from 1 to 10000, got undefined',
    ],
    [
      'maxLength 0',
      { maxLength: 0 },
      'view "recent": maxLength must be a whole number from 1 to 10000, got 0',
    ],
    [
      'maxLength 10001',
      { maxLength: 10_001 },
      'view "recent": maxLength must be a whole number from 1 to 10000, got 10001',
    ],
    [
      'maxLength 2.5',
      { maxLength: 2.5 },
      'view "recent": maxLength must be a whole number from 1 to 10000, got 2.5',
    ],
    ['an unknown order', { order: 'up' }, `view "recent": order must be 'asc' or 'desc', got "up"`],
    [
      'an element template without a column',
      { element: 'same' },
      'view "recent": element "same" uses no column',
    ],
    [
      'a key without a column',
      { key: 'recent' },
      'view "recent": a list view needs a key template with a {column}',
    ],
  ])('refuses a list view with %s, in one line naming the view and the option', (_case, change, message) => {
    let error: unknown;
    try {
      defineView()({ ...list, ...change } as never);
    } catch (caught) {
      error = caught;
    }
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain('\n');
    expect(error).toMatchObject({ code: 'E_VIEW_DEFINITION' });
  });

  it.each([
    ['no member', undefined, 'view "voters": a set view needs member'],
    ['a member template that uses no column', 'everyone', 'view "voters": member "everyone" uses no column'],
  ])('refuses a set view with %s, in one line naming the view and the option', (_case, member, message) => {
    const attempt = () =>
      defineView()({ name: 'voters', shape: 'set', key: 'voters:{post_id}', member, query } as never);
    expect(attempt).toThrow(message);
  });
});
