import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { envExample } from '../../src/cli/templates/env-example.ts';

describe('the .env.example viewkeeper init writes', () => {
  it('names every variable config.ts reads, commented out', async () => {
    const config = await readFile(new URL('../../src/config/config.ts', import.meta.url), 'utf8');
    const read = [...config.matchAll(/\(\s*env,\s*'([A-Z][A-Z0-9_]+)'/g)].map((match) => match[1]!);
    expect(read.length).toBeGreaterThanOrEqual(10);
    const example = envExample();
    for (const name of new Set(read)) expect(example).toMatch(new RegExp(`^# ${name}=`, 'm'));
    expect(example.split('\n').filter((line) => line !== '' && !line.startsWith('#'))).toEqual([]);
  });

  it('carries no credential', () => {
    expect(envExample()).not.toMatch(/:\/\/[^/@\s]*:[^/@\s]*@/);
  });
});
