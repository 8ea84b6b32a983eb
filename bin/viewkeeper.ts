#!/usr/bin/env -S node --max-semi-space-size=4
import { main } from '../src/cli/main.ts';

// --max-semi-space-size=4 (in the shebang, and wherever the daemon is started with an explicit
// `node`): streaming a large rebuild makes many short-lived rows; with V8's default young generation
// the heap grows to ~250 MB RSS for a 1M-member zset, with 4 MB semi-spaces it stays near 170 MB
// at the same speed (bench/README.md, "Memory").

// The only process-level wiring: argv in, exit code out. LOG_LEVEL=debug adds stacks to failures.
const debug = /^(debug|trace)$/i.test(process.env.LOG_LEVEL ?? '');
process.exitCode = await main(process.argv.slice(2), undefined, debug);
