// `node demo/cli.ts migrate|seed`: the demo's tables and data. `npm run demo` runs both, then the
// daemon on demo/jobs (the repository's .env points VK_JOBS_DIR there).
import { runProgram } from '../src/cli/main.ts';
import { DEMO } from './program.ts';

const debug = /^(debug|trace)$/i.test(process.env.LOG_LEVEL ?? '');
process.exitCode = await runProgram(DEMO, process.argv.slice(2), undefined, debug);
