import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const INDEX = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

/** Runs an ES module snippet in a fresh Node process; resolves with its exit code (null = killed at the deadline). */
export function runScript(
  source: string,
  timeoutMs = 15_000,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/**
 * A script that creates a client with `options` (JSON-able; its views need a hash view `stats` keyed
 * by `id`), uses every part of it — cached() with tags and stale-while-revalidate, invalidateTag, a
 * view read, refresh(), write() — and closes it, without process.exit: the process must end on its own.
 */
export function everyPartScript(options: Record<string, unknown>): string {
  return `
    import { createClient } from ${JSON.stringify(INDEX)};
    const client = createClient(${JSON.stringify(options)});
    await client.cached('k', async () => 1, { ttl: 1000, tags: ['t'], staleWhileRevalidate: 1000 });
    await client.cached('k', async () => 1, { ttl: 1000, tags: ['t'] });
    await client.invalidateTag('t');
    await client.hash('stats', { id: 1 });
    await client.refresh('stats', { id: 1 });
    await client.write('votes', [{ id: 'op-1', post_id: 1, user_id: 1, value: 1 }]);
    await client.close();
  `;
}
