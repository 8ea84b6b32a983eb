import { describe, expect, it } from 'vitest';
import { DEMO } from '../../demo/program.ts';
import { main, runProgram } from '../../src/cli/main.ts';
import { refreshParams } from '../../src/cli/refresh-params.ts';

// These paths fail before any connection is attempted, so they need no services.
async function run(argv: string[], program?: typeof DEMO) {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (line: string) => out.push(line), err: (line: string) => err.push(line) };
  const code = program ? await runProgram(program, argv, io) : await main(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n'), firstError: err[0] ?? '' };
}

describe('viewkeeper CLI argument handling', () => {
  it('prints usage and exits 2 without a command', async () => {
    const result = await run([]);
    expect(result.code).toBe(2);
    expect(result.err).toContain('Usage: viewkeeper <command>');
  });

  it('exits 2 with the name of an unknown command', async () => {
    const result = await run(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.firstError).toBe('viewkeeper: unknown command "frobnicate"');
  });

  it.each(['init', 'start', 'migrate', 'check', 'schema', 'refresh', 'status', 'audit', 'rejected'])(
    'has --help for %s',
    async (command) => {
      const result = await run([command, '--help']);
      expect(result.code).toBe(0);
      expect(result.out).toContain(`Usage: viewkeeper ${command}`);
    },
  );

  it('exits 2 naming an unknown flag', async () => {
    const result = await run(['migrate', '--bogus']);
    expect(result.code).toBe(2);
    expect(result.firstError).toBe("viewkeeper migrate: Unknown option '--bogus'");
  });

  it.each([
    ['-5', '--users "-5" is invalid'],
    ['abc', '--users "abc" is invalid'],
    ['1e12', '--users "1e12" is invalid'],
    ['1.5', '--users "1.5" is invalid'],
    ['0', '--users "0" is invalid'],
  ])('demo seed --users %s is a one-line usage error', async (value, message) => {
    const result = await run(['seed', '--users', value], DEMO);
    expect(result.code).toBe(2);
    expect(result.firstError).toBe(`demo seed: ${message}: expected a whole number from 1 to 10000000`);
  });

  it('refresh --param with the same name twice is a usage error pointing to --key (the last value used to win)', async () => {
    const result = await run(['refresh', 'user_stats', '--param', 'user_id=1', '--param', 'user_id=2']);
    expect(result.code).toBe(2);
    expect(result.firstError).toBe(
      'viewkeeper refresh: --param user_id is given twice ("1" and "2"): one --param per name; for several keys give one --key each, e.g. --key user_id=1 --key user_id=2',
    );
  });

  it('refresh with both --param and --key is a usage error', async () => {
    const result = await run(['refresh', 'user_stats', '--param', 'user_id=1', '--key', 'user_id=2']);
    expect(result.code).toBe(2);
    expect(result.firstError).toContain('give --param (one key) or --key (one or more keys), not both');
  });

  it.each([
    [['--key', 'user_id'], '--key "user_id" is invalid: expected name=value'],
    [['--key', '{"user_id":'], 'is not valid JSON'],
    [['--key', '{ "x": 1 } ]'], 'is not valid JSON'],
    [['--param', '=1'], '--param "=1" is invalid: expected name=value'],
  ])('refresh %j is a one-line usage error', async (flags, message) => {
    const result = await run(['refresh', 'user_stats', ...flags]);
    expect(result.code).toBe(2);
    expect(result.firstError).toContain(message);
  });
});

describe('refresh params from flags', () => {
  it('--param pairs make one key; --key flags make a bulk list, name=value or a JSON object each', () => {
    expect(refreshParams(undefined, undefined)).toBeUndefined();
    expect(refreshParams(['org_id=3', 'user_id=4'], undefined)).toEqual({ org_id: '3', user_id: '4' });
    expect(refreshParams(['name=a=b,c'], undefined)).toEqual({ name: 'a=b,c' });
    expect(refreshParams(undefined, ['user_id=1', 'user_id=2', '{"org_id":3,"user_id":4}'])).toEqual([
      { user_id: '1' },
      { user_id: '2' },
      { org_id: 3, user_id: 4 },
    ]);
  });

  it('more --key flags than one bulk request takes are refused', () => {
    const keys = Array.from({ length: 10_001 }, (_, i) => `user_id=${i}`);
    expect(() => refreshParams(undefined, keys)).toThrow(
      /10001 --key flags: one bulk request takes at most 10000/,
    );
  });
});
