import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS, rememberEnvSecrets, resolveConfig } from '../../src/config/config.ts';
import { redactSecrets } from '../../src/config/redact.ts';
import { isViewkeeperError } from '../../src/errors.ts';

function configError(env: Record<string, string>): string {
  try {
    resolveConfig(env, '/srv/app');
  } catch (error) {
    expect(isViewkeeperError(error, 'E_CONFIG')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected resolveConfig to throw');
}

describe('resolveConfig', () => {
  it('works with no environment at all, pointing at local services', () => {
    const config = resolveConfig({}, '/srv/app');
    expect(config).toEqual({
      databaseUrl: CONFIG_DEFAULTS.databaseUrl,
      databaseReadUrl: undefined,
      replicaWaitMs: 5000,
      redisUrl: CONFIG_DEFAULTS.redisUrl,
      queueRedisUrl: CONFIG_DEFAULTS.redisUrl,
      queueRedisVariable: 'REDIS_URL',
      prefix: 'vk',
      jobsDir: path.resolve('/srv/app', 'jobs'),
      httpHost: '127.0.0.1',
      httpPort: undefined,
      httpToken: undefined,
      logLevel: 'info',
      refreshConcurrency: 4,
      jobLockMs: 15000,
      auditIntervalMs: 600_000,
      auditSample: 20,
      capturePollMs: 2000,
    });
  });

  it('VK_AUDIT_INTERVAL_MS=0 turns the drift audit off; VK_AUDIT_SAMPLE must be 1 or more', () => {
    expect(resolveConfig({ VK_AUDIT_INTERVAL_MS: '0', VK_AUDIT_SAMPLE: '500' })).toMatchObject({
      auditIntervalMs: 0,
      auditSample: 500,
    });
    expect(() => resolveConfig({ VK_AUDIT_SAMPLE: '0' })).toThrow(
      'VK_AUDIT_SAMPLE="0" is invalid: expected a whole number from 1 to 10000',
    );
  });

  it('defaults QUEUE_REDIS_URL to REDIS_URL and keeps a database number', () => {
    const config = resolveConfig({ REDIS_URL: 'redis://cache:6380/5' });
    expect(config.queueRedisUrl).toBe('redis://cache:6380/5');
    expect(resolveConfig({ REDIS_URL: 'redis://a/1', QUEUE_REDIS_URL: 'rediss://b/2' }).queueRedisUrl).toBe(
      'rediss://b/2',
    );
  });

  it('names the variable the queue URL came from, for messages', () => {
    expect(resolveConfig({ REDIS_URL: 'redis://a/1' }).queueRedisVariable).toBe('REDIS_URL');
    expect(resolveConfig({ QUEUE_REDIS_URL: 'redis://b/2' }).queueRedisVariable).toBe('QUEUE_REDIS_URL');
  });

  it('treats empty variables as unset', () => {
    expect(resolveConfig({ VK_PREFIX: '  ', LOG_LEVEL: '' }).prefix).toBe('vk');
  });

  it.each([
    [{ DATABASE_URL: 'not-a-url' }, 'DATABASE_URL="not-a-url"'],
    [{ DATABASE_URL: 'mysql://db/x' }, 'DATABASE_URL="mysql://db/x"'],
    [{ DATABASE_READ_URL: 'replica:5432' }, 'DATABASE_READ_URL="replica:5432"'],
    [{ DATABASE_READ_URL: 'redis://replica/x' }, 'DATABASE_READ_URL="redis://replica/x"'],
    [{ VK_REPLICA_WAIT_MS: '-1' }, 'VK_REPLICA_WAIT_MS="-1"'],
    [{ REDIS_URL: 'http://cache' }, 'REDIS_URL="http://cache"'],
    [{ REDIS_URL: 'redis://cache/abc' }, 'REDIS_URL="redis://cache/abc"'],
    [{ QUEUE_REDIS_URL: 'nope' }, 'QUEUE_REDIS_URL="nope"'],
    [{ VK_HTTP_PORT: '99999' }, 'VK_HTTP_PORT="99999"'],
    [{ VK_HTTP_PORT: '80a' }, 'VK_HTTP_PORT="80a"'],
    [{ VK_PREFIX: 'a b' }, 'VK_PREFIX="a b"'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL="loud"'],
    [{ VK_REFRESH_CONCURRENCY: '0' }, 'VK_REFRESH_CONCURRENCY="0"'],
  ])('refuses %o naming the variable and the value', (env, named) => {
    const message = configError(env);
    expect(message).toContain(named);
    expect(message).toContain('expected');
    expect(message).not.toContain('\n');
  });

  it('masks the password of an invalid URL in the error', () => {
    const message = configError({ REDIS_URL: 'redis://user:hunter2@cache/not-a-number' });
    expect(message).toContain('REDIS_URL');
    expect(message).toContain('user:***@cache');
    expect(message).not.toContain('hunter2');
  });

  it('DATABASE_READ_URL is optional, validated like DATABASE_URL, and its password masked in the error', () => {
    expect(resolveConfig({}).databaseReadUrl).toBeUndefined();
    expect(resolveConfig({ DATABASE_READ_URL: ' ' }).databaseReadUrl).toBeUndefined();
    expect(resolveConfig({ DATABASE_READ_URL: 'postgres://r@standby:5433/app' }).databaseReadUrl).toBe(
      'postgres://r@standby:5433/app',
    );
    const message = configError({ DATABASE_READ_URL: 'mysql://reader:s3cret-standby@standby/app' });
    expect(message).toContain('DATABASE_READ_URL="mysql://reader:***@standby/app"');
    expect(message).not.toContain('s3cret-standby');
  });

  it("remembers DATABASE_READ_URL's password, so it is masked where it appears without its URL", () => {
    rememberEnvSecrets({ DATABASE_READ_URL: 'postgres://reader:standby-pw-7d1@standby:5433/app' });
    expect(redactSecrets('password authentication failed: standby-pw-7d1')).toBe(
      'password authentication failed: ***',
    );
  });

  it('refuses to serve HTTP beyond loopback without VK_HTTP_TOKEN, naming the host', () => {
    const message = configError({ VK_HTTP_HOST: '0.0.0.0', VK_HTTP_PORT: '8080' });
    expect(message).toContain('VK_HTTP_HOST="0.0.0.0"');
    expect(message).toContain('VK_HTTP_TOKEN');
    expect(message).not.toContain('\n');
  });

  it('serves HTTP beyond loopback with a token, and on any loopback address without one', () => {
    const token = 'correct-horse-battery-staple';
    expect(
      resolveConfig({ VK_HTTP_HOST: '0.0.0.0', VK_HTTP_PORT: '8080', VK_HTTP_TOKEN: token }).httpToken,
    ).toBe(token);
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) {
      expect(resolveConfig({ VK_HTTP_HOST: host, VK_HTTP_PORT: '8080' }).httpPort).toBe(8080);
    }
    // No listener, nothing exposed: a wide host alone is not an error.
    expect(resolveConfig({ VK_HTTP_HOST: '0.0.0.0' }).httpPort).toBeUndefined();
  });

  it('refuses a short VK_HTTP_TOKEN without ever printing it', () => {
    const message = configError({ VK_HTTP_TOKEN: 'hunter2' });
    expect(message).toContain('VK_HTTP_TOKEN');
    expect(message).not.toContain('hunter2');
  });

  it('accepts redis+cluster:// URLs and refuses a queue cluster without a hash-tagged VK_PREFIX, in one line', () => {
    const cluster = 'redis+cluster://:sekrit@10.0.0.1:7000,10.0.0.2:7000';
    const tagged = resolveConfig({ REDIS_URL: cluster, VK_PREFIX: '{vk}' });
    expect(tagged.redisUrl).toBe(cluster);
    expect(tagged.queueRedisUrl).toBe(cluster);
    const message = configError({ REDIS_URL: cluster });
    expect(message).toMatch(
      /^VK_PREFIX="vk" has no hash tag, but REDIS_URL is a Redis Cluster.*set VK_PREFIX=\{vk\}/,
    );
    expect(message).not.toContain('\n');
    expect(message).not.toContain('sekrit');
    // Views on a cluster with the queues on a standalone Redis: no tag needed.
    expect(resolveConfig({ REDIS_URL: cluster, QUEUE_REDIS_URL: 'redis://10.0.0.3:6379/0' }).prefix).toBe(
      'vk',
    );
    expect(configError({ REDIS_URL: 'redis+cluster://10.0.0.1:7000/3', VK_PREFIX: '{vk}' })).toMatch(
      /REDIS_URL.*only database 0/,
    );
  });
});
