import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { endpointOf, redactSecrets } from '../../src/config/redact.ts';
import { createLogger } from '../../src/logging/create-logger.ts';

describe('redactSecrets', () => {
  it('masks passwords in every URL of a string and keeps the user and host', () => {
    expect(redactSecrets('pg postgres://app:s3cr%40t@db:5432/x and redis://:pw@cache:6379/1')).toBe(
      'pg postgres://app:***@db:5432/x and redis://:***@cache:6379/1',
    );
  });

  it('leaves URLs without credentials alone', () => {
    expect(redactSecrets('redis://cache:6379/0')).toBe('redis://cache:6379/0');
  });

  it('names host and port only', () => {
    expect(endpointOf('postgres://u:p@db.internal/x', 5432)).toBe('db.internal:5432');
    expect(endpointOf('redis://:p@10.0.0.7:6380/2', 6379)).toBe('10.0.0.7:6380');
  });
});

describe('createLogger', () => {
  it('never writes a credential, whether in the message, a field, a nested object or an error', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger({ level: 'info', pretty: false, destination });
    const url = 'postgres://app:hunter2@db:5432/x';
    logger.info(
      { url, nested: { redis: 'redis://:hunter2@cache/0' }, password: 'hunter2' },
      `connecting ${url}`,
    );
    logger.error({ err: new Error(`failed ${url}`) }, 'boom');
    const output = lines.join('');
    expect(lines).toHaveLength(2);
    expect(output).not.toContain('hunter2');
    expect(output).toContain('app:***@db');
  });
});
