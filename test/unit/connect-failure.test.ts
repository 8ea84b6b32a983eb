import { describe, expect, it } from 'vitest';
import { connectFailure, databaseNumber, failureKind } from '../../src/connect-failure.ts';

describe('connection failures', () => {
  it('tells refused authentication and a missing database from an unreachable server', () => {
    expect(failureKind(Object.assign(new Error('WRONGPASS invalid username-password pair'), {}))).toBe(
      'auth',
    );
    expect(failureKind(new Error('NOAUTH Authentication required.'))).toBe('auth');
    expect(
      failureKind(
        Object.assign(new Error('password authentication failed for user "app"'), { code: '28P01' }),
      ),
    ).toBe('auth');
    expect(failureKind(new Error('ERR DB index is out of range'))).toBe('database');
    expect(failureKind(Object.assign(new Error('database "x" does not exist'), { code: '3D000' }))).toBe(
      'database',
    );
    expect(
      failureKind(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })),
    ).toBe('unreachable');
    expect(failureKind(new Error('wrapped', { cause: new Error('WRONGPASS x') }))).toBe('auth');
  });

  it('says "authentication failed" with the variable and host, never the password; db out of range is E_CONFIG', () => {
    const auth = connectFailure(
      'Redis',
      'redis://:s3cret-pw@cache:6380/2',
      'QUEUE_REDIS_URL',
      new Error('WRONGPASS'),
    );
    expect(auth.code).toBe('E_CONNECT');
    expect(auth.message).toMatch(/^Redis at cache:6380 \(QUEUE_REDIS_URL\): authentication failed/);
    expect(auth.message).not.toContain('s3cret-pw');
    const db = connectFailure(
      'Redis',
      'redis://cache/99',
      'REDIS_URL',
      new Error('ERR DB index is out of range'),
    );
    expect(db.code).toBe('E_CONFIG');
    expect(db.message).toMatch(/^REDIS_URL selects database 99, which Redis at cache:6379 does not have/);
    expect(databaseNumber('redis://h:1')).toBe(0);
  });
});
