import { type Logger, pino } from 'pino';
import type { LogLevel } from '../config/config.ts';
import { redactSecrets } from '../config/redact.ts';

export type { Logger } from 'pino';

function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  // An error's own fields can hold a secret too (ioredis: `command.args` of a refused AUTH).
  if (value instanceof Error) return scrub(pino.stdSerializers.err(value), depth + 1);
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = scrub(item, depth + 1);
  return out;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Human-readable output; defaults to whether stdout is a terminal. */
  pretty?: boolean;
  /** Where JSON lines go. @defaultValue stdout */
  destination?: pino.DestinationStream;
}

/**
 * The daemon's and the CLI's root logger: JSON lines, or pino-pretty on a terminal. Every string that
 * looks like a URL with credentials is masked, and keys named like secrets are censored.
 */
export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  const base: pino.LoggerOptions = {
    level: options.level,
    base: { pid: process.pid },
    redact: {
      paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization'],
      censor: '***',
    },
    formatters: { log: (object) => scrub(object) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        method.apply(
          this,
          args.map((arg) => (typeof arg === 'string' ? redactSecrets(arg) : arg)) as Parameters<
            typeof method
          >,
        );
      },
    },
    serializers: {
      err: (error: Error) => {
        const serialized = pino.stdSerializers.err(error);
        serialized.message = redactSecrets(serialized.message);
        if (serialized.stack) serialized.stack = redactSecrets(serialized.stack);
        return serialized;
      },
    },
  };
  const prettyTarget = pretty && !options.destination ? resolvePrettyPrinter() : undefined;
  if (prettyTarget) {
    return pino({
      ...base,
      transport: { target: prettyTarget, options: { colorize: true, ignore: 'pid,hostname' } },
    });
  }
  // The finished line passes through the redaction point once more: whatever a serializer let
  // through (a secret in a field the scrub did not reach) is masked before it is written.
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(base, {
    write: (line: string) => destination.write(redactSecrets(line)),
  } as pino.DestinationStream);
}

/**
 * pino-pretty is an optional peer dependency: used on a terminal when the project has it installed,
 * JSON lines otherwise, so that a production install never carries a pretty-printer.
 */
function resolvePrettyPrinter(): string | undefined {
  try {
    return import.meta.resolve('pino-pretty');
  } catch {
    return undefined;
  }
}

/** A logger that drops everything: the library default. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
