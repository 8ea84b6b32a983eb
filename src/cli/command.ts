import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { ViewkeeperError } from '../errors.ts';

export interface CommandIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** One CLI command: its flags (node:util parseArgs), its help text, and what it does. */
export interface Command<Options extends ParseArgsOptionsConfig = ParseArgsOptionsConfig> {
  name: string;
  summary: string;
  usage: string;
  /** Lines shown under "Options:" in --help. */
  help: string[];
  options: Options;
  allowPositionals?: boolean;
  run(input: ParsedInput, io: CommandIo): Promise<number>;
}

export interface ParsedInput {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export function defineCommand<Options extends ParseArgsOptionsConfig>(
  command: Command<Options>,
): Command<Options> {
  return command;
}

/** How long a command waits for a server before it gives up with one line (refresh --wait: --timeout). */
export const CONNECT_TIMEOUT_MS = 5000;
/** How long closing a connection may take at the end of a command; then it is dropped. */
export const CLOSE_TIMEOUT_MS = 1000;

export { within } from '../lib/within.ts';

export function usageError(message: string): ViewkeeperError {
  return new ViewkeeperError('E_USAGE', message);
}

/** Parses argv for `command`; unknown flags and stray arguments become `E_USAGE`. */
export function parseCommandArgs(command: Command, argv: string[]): ParsedInput {
  try {
    const { values, positionals } = parseArgs({
      args: attachNegativeNumbers(command, argv),
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: command.allowPositionals ?? false,
      strict: true,
    });
    return { values: values as ParsedInput['values'], positionals };
  } catch (error) {
    // node's messages are multi-line and mention internals; keep the first sentence.
    const message = (error as Error).message.split('\n')[0]!.replace(/\. To specify.*$/, '');
    throw usageError(message);
  }
}

/**
 * `--users -5` makes parseArgs complain about an "ambiguous" value; rewrite it to `--users=-5` so the
 * flag's own validation can say what is wrong with the number.
 */
function attachNegativeNumbers(command: Command, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const flag = arg.startsWith('--') ? command.options[arg.slice(2)] : undefined;
    if (flag?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/**
 * A flag that must be a whole number in [min, max]. `1e12`, `-5`, `abc` and `1.5` are all refused
 * with the flag and the value named.
 */
export function integerFlag(input: ParsedInput, flag: string, min: number, max: number): number | undefined {
  const raw = input.values[flag];
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (
    !/^\d+$/.test(text) ||
    !Number.isSafeInteger(Number(text)) ||
    Number(text) < min ||
    Number(text) > max
  ) {
    throw usageError(
      `--${flag} ${JSON.stringify(text)} is invalid: expected a whole number from ${min} to ${max}`,
    );
  }
  return Number(text);
}

export function helpText(command: Command): string {
  return [
    `Usage: viewkeeper ${command.usage}`,
    '',
    command.summary,
    '',
    'Options:',
    ...command.help,
    '  -h, --help  show this help',
  ].join('\n');
}
