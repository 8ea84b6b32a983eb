import { describe, expect, it } from 'vitest';
import { DEMO } from '../../demo/program.ts';
import { main, runProgram } from '../../src/cli/main.ts';

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
});
