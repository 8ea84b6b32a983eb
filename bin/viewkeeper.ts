#!/usr/bin/env node
import { main } from '../src/cli/main.ts';

// The only process-level wiring: argv in, exit code out. LOG_LEVEL=debug adds stacks to failures.
const debug = /^(debug|trace)$/i.test(process.env.LOG_LEVEL ?? '');
process.exitCode = await main(process.argv.slice(2), undefined, debug);
