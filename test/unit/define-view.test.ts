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
