import { describe, expect, it } from 'vitest';
import { resolveClientOptions } from '../../src/client/options.ts';
import { isViewkeeperError } from '../../src/errors.ts';
import { groupBySlot, hasHashTag, inSlot, slotOf, tagForSlot } from '../../src/redis/slot.ts';

describe('cluster key slots', () => {
  it('match Redis: CRC16 of the key, or of its first non-empty hash tag', () => {
    // Values from CLUSTER KEYSLOT on Redis 7.
    expect(slotOf('123456789')).toBe(12739);
    expect(slotOf('foo')).toBe(12182);
    expect(slotOf('{user1000}.following')).toBe(slotOf('user1000'));
    expect(slotOf('a{}b')).toBe(13694); // an empty tag does not count: the whole key is hashed
    expect(slotOf('{a{b}c')).toBe(slotOf('a{b'));
    expect(slotOf('x{é}y')).toBe(10180); // UTF-8 bytes
  });

  it('a tag found for any slot hashes to it, and inSlot names a key into a given slot', () => {
    for (const slot of [0, 1, 777, 8191, 16383]) expect(slotOf(tagForSlot(slot))).toBe(slot);
    const entry = 'vk:cache:profile:7';
    const lock = inSlot('vk:cache-lock:', 'profile:7', slotOf(entry));
    expect(lock).toMatch(/^vk:cache-lock:\{[0-9a-z]+\}profile:7$/);
    expect(slotOf(lock)).toBe(slotOf(entry));
    // Already in the slot (a hash-tagged prefix): the plain name is kept.
    expect(inSlot('{vk}:cache-lock:', 'k', slotOf('{vk}:cache:k'))).toBe('{vk}:cache-lock:k');
    // A head with a stray brace: the tag goes in front, still in the slot.
    const odd = inSlot('vk{:cache-lock:', 'a}', slotOf('vk{:cache:a}'));
    expect(slotOf(odd)).toBe(slotOf('vk{:cache:a}'));
  });

  it('groups keys by slot, keeping their indexes', () => {
    const groups = groupBySlot(['{a}1', 'b', '{a}2']);
    expect(groups.get(slotOf('a'))).toEqual([0, 2]);
    expect(groups.get(slotOf('b'))).toEqual([1]);
    expect(hasHashTag('{vk}')).toBe(true);
    expect(hasHashTag('vk')).toBe(false);
    expect(hasHashTag('vk{}')).toBe(false);
  });
});

describe('client options with cluster URLs', () => {
  const refused = (options: Parameters<typeof resolveClientOptions>[0]) => {
    try {
      resolveClientOptions(options);
    } catch (error) {
      expect(isViewkeeperError(error, 'E_CONFIG')).toBe(true);
      return (error as Error).message;
    }
    throw new Error('accepted');
  };

  it('accepts redis+cluster:// and rediss+cluster:// URLs', () => {
    const resolved = resolveClientOptions({
      redisUrl: 'redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7001',
      queueRedisUrl: 'redis://10.0.0.9:6379',
    });
    expect(resolved.redisUrl).toBe('redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7001');
    expect(resolveClientOptions({ redisUrl: 'rediss+cluster://h:1', prefix: '{vk}' }).prefix).toBe('{vk}');
  });

  it('refuses a cluster URL with a database, naming the problem and not the password', () => {
    const message = refused({ redisUrl: 'redis+cluster://:hunter22@h:7000/3', prefix: '{vk}' });
    expect(message).toMatch(/redisUrl is invalid: a Redis Cluster has only database 0/);
    expect(message).not.toContain('hunter22');
  });

  it('refuses queues on a cluster under a prefix without a hash tag', () => {
    expect(refused({ redisUrl: 'redis+cluster://h:7000', prefix: 'vk' })).toMatch(
      /^client option prefix="vk" needs a hash tag such as "\{vk\}"/,
    );
    expect(refused({ redisUrl: 'redis://h', queueRedisUrl: 'redis+cluster://h:7000' })).toMatch(/hash tag/);
  });
});
