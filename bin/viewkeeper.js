#!/usr/bin/env -S node --max-semi-space-size=4
// The `viewkeeper` command. Plain JavaScript so that it runs the same from a clone and from an
// installed package: in a clone the TypeScript sources are there and run directly (Node strips the
// types; no build step between an edit and the next run), in the package only the built `dist/` is
// shipped, because Node refuses to strip types under node_modules.
//
// --max-semi-space-size=4 (in the shebang, and wherever the daemon is started with an explicit
// `node`): streaming a large rebuild makes many short-lived rows; with V8's default young generation
// the heap grows to ~250 MB RSS for a 1M-member zset, with 4 MB semi-spaces it stays near 170 MB
// at the same speed (bench/README.md, "Memory").
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
const entry = existsSync(source) ? source : new URL('../dist/src/cli/main.js', import.meta.url);

// The only process-level wiring: a `.env` in the working directory (the environment wins over it),
// argv in, exit code out, every output line redacted. LOG_LEVEL=debug adds stacks to failures.
if (existsSync('.env')) process.loadEnvFile('.env');
const { main, guardProcessOutput } = await import(entry.href);
guardProcessOutput();
const debug = /^(debug|trace)$/i.test(process.env.LOG_LEVEL ?? '');
process.exitCode = await main(process.argv.slice(2), undefined, debug);
// The command is done: a connection a library still holds open (a reconnect timer) must not keep
// the process alive. Normally it exits by itself before this fires.
setTimeout(() => process.exit(), 1000).unref();
