import { redactSecrets } from '../config/redact.ts';
import { isViewkeeperError } from '../errors.ts';
import { type Command, type CommandIo, helpText, parseCommandArgs } from './command.ts';
import { auditCommand } from './commands/audit.ts';
import { captureCommand } from './commands/capture.ts';
import { checkCommand } from './commands/check.ts';
import { initCommand } from './commands/init.ts';
import { migrateCommand } from './commands/migrate.ts';
import { refreshCommand } from './commands/refresh.ts';
import { rejectedCommand } from './commands/rejected.ts';
import { schemaCommand } from './commands/schema.ts';
import { startCommand } from './commands/start.ts';
import { statusCommand } from './commands/status.ts';

export { guardProcessOutput } from './output-guard.ts';

// biome-ignore lint/suspicious/noExplicitAny: commands differ only in their option shapes
type AnyCommand = Command<any>;

/** A command-line program: its name (as typed) and its commands. */
export interface Program {
  name: string;
  commands: AnyCommand[];
}

export const VIEWKEEPER: Program = {
  name: 'viewkeeper',
  commands: [
    initCommand,
    startCommand,
    migrateCommand,
    checkCommand,
    schemaCommand,
    refreshCommand,
    statusCommand,
    auditCommand,
    rejectedCommand,
    captureCommand,
  ],
};

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;
const USAGE_CODES = ['E_USAGE', 'E_CONFIG', 'E_VIEW_UNKNOWN', 'E_BAD_PARAMS', 'E_BAD_PAYLOAD'] as const;

function overview(program: Program): string {
  const width = Math.max(...program.commands.map((command) => command.name.length));
  return [
    `Usage: ${program.name} <command> [options]`,
    '',
    'Commands:',
    ...program.commands.map(
      (command) => `  ${command.name.padEnd(width)}  ${command.summary.split(/[.:] /)[0]}`,
    ),
    '',
    `Run \`${program.name} <command> --help\` for a command. Configuration comes from the environment (see README).`,
  ].join('\n');
}

const defaultIo: CommandIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/**
 * Runs the CLI and returns the exit code: 0 success, 1 runtime failure, 2 usage or configuration error.
 * Failures print one line to stderr; the stack only with LOG_LEVEL=debug or trace.
 */
export function main(argv: string[], io: CommandIo = defaultIo, debug = false): Promise<number> {
  return runProgram(VIEWKEEPER, argv, io, debug);
}

/** `main` for any program built from commands (the demo has its own: demo/cli.ts). */
export async function runProgram(
  program: Program,
  argv: string[],
  io: CommandIo = defaultIo,
  debug = false,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.err : io.out)(overview(program));
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = program.commands.find((candidate) => candidate.name === name);
  if (!command) {
    io.err(`${program.name}: unknown command ${JSON.stringify(name)}`);
    io.err(overview(program));
    return EXIT.usage;
  }
  try {
    const input = parseCommandArgs(command, rest);
    if (input.values.help) {
      io.out(helpText(command));
      return EXIT.ok;
    }
    return await command.run(input, io);
  } catch (error) {
    // 2: the command line or the configuration is wrong (fix it, do not retry); 1: something failed.
    const usage = USAGE_CODES.some((code) => isViewkeeperError(error, code));
    const message = redactSecrets(error instanceof Error ? error.message : String(error)).split('\n')[0];
    io.err(`${program.name} ${command.name}: ${message}`);
    if (debug && error instanceof Error && error.stack) io.err(redactSecrets(error.stack));
    if (isViewkeeperError(error, 'E_USAGE')) io.err(`Usage: ${program.name} ${command.usage}`);
    return usage ? EXIT.usage : EXIT.failure;
  }
}
