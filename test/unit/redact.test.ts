import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { endpointOf, redactSecrets, rememberUrlSecrets } from '../../src/config/redact.ts';
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

describe('remembered secrets', () => {
  it('masks a configured password wherever it appears, raw and URL-encoded, not only inside URLs', () => {
    rememberUrlSecrets(['redis://:p%40ss-w0rd!@cache:6379/1', 'not a url']);
    const dump = "command: { name: 'auth', args: [ 'p@ss-w0rd!' ] } and p%40ss-w0rd! again";
    expect(redactSecrets(dump)).toBe("command: { name: 'auth', args: [ '***' ] } and *** again");
  });

  it('masks secrets inside the fields of a logged error, not only its message', () => {
    rememberUrlSecrets(['redis://:field-secret-7@cache']);
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger({ level: 'info', pretty: false, destination });
    const error = Object.assign(new Error('WRONGPASS invalid username-password pair'), {
      command: { name: 'auth', args: ['field-secret-7'] },
    });
    logger.warn({ err: error }, 'redis error');
    logger.warn(error);
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).not.toContain('field-secret-7');
    expect(lines[0]).toContain('WRONGPASS');
  });
});
