import { describe, expect, it } from 'vitest';
import { redactSecrets, rememberUrlSecrets } from '../../src/config/redact.ts';
import { isClusterUrl, parseRedisTarget } from '../../src/redis/target.ts';

describe('parseRedisTarget', () => {
  it('leaves a plain redis:// URL to ioredis', () => {
    expect(parseRedisTarget(' redis://127.0.0.1:6379/3 ')).toEqual({
      kind: 'standalone',
      url: 'redis://127.0.0.1:6379/3',
    });
    expect(isClusterUrl('redis://127.0.0.1:6379')).toBe(false);
  });

  it('reads seed nodes, credentials and TLS from a cluster URL', () => {
    expect(parseRedisTarget('rediss+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      username: 'app',
      password: 'p@ss',
      tls: true,
    });
    expect(parseRedisTarget('redis+cluster://node')).toEqual({
      kind: 'cluster',
      nodes: [{ host: 'node', port: 6379 }],
      username: undefined,
      password: undefined,
      tls: false,
    });
  });

  it('refuses a database number, a bad port and no nodes, without the password in the reason', () => {
    expect(() => parseRedisTarget('redis+cluster://:hunter22@a:7000/3')).toThrow(/only database 0/);
    expect(() => parseRedisTarget('redis+cluster://:hunter22@a:99999')).toThrow(/"a:99999" is not host:port/);
    expect(() => parseRedisTarget('redis+cluster://')).toThrow(/at least one host:port/);
    for (const url of ['redis+cluster://:hunter22@a:7000/3', 'redis+cluster://:hunter22@a:99999']) {
      try {
        parseRedisTarget(url);
      } catch (error) {
        expect(String(error)).not.toContain('hunter22');
      }
    }
  });

  it('cluster URLs are redacted like any other', () => {
    rememberUrlSecrets(['redis+cluster://app:s3cret-cl@a:7000,b:7001']);
    expect(redactSecrets('at redis+cluster://app:s3cret-cl@a:7000,b:7001 (s3cret-cl)')).toBe(
      'at redis+cluster://app:***@a:7000,b:7001 (***)',
    );
  });
});
