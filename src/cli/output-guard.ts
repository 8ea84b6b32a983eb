import { inspect } from 'node:util';
import { rememberEnvSecrets } from '../config/config.ts';
import { redactSecrets } from '../config/redact.ts';

// Process-level wiring of the `viewkeeper` command (bin/viewkeeper.js calls it once, before anything
// else runs): every byte written to stdout and stderr passes through the redaction point, including
// what libraries print on their own (console.error dumps of error objects, ioredis's "Unhandled error
// event"), and a crash is reported redacted instead of by Node's own printer, which writes to the file
// descriptor directly. The logger redacts its lines itself (pino writes to the descriptor too).

type Write = typeof process.stdout.write;

function redacting(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
    return write(redactSecrets(text), ...rest.filter((arg) => typeof arg === 'function'));
  }) as Write;
}

let installed = false;

/** Installs the guard on this process; later calls do nothing. */
export function guardProcessOutput(): void {
  if (installed) return;
  installed = true;
  rememberEnvSecrets();
  redacting(process.stdout);
  redacting(process.stderr);
  const crash = (kind: string) => (error: unknown) => {
    process.stderr.write(`viewkeeper: ${kind}: ${inspect(error, { depth: 4 })}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', crash('uncaught exception'));
  process.on('unhandledRejection', crash('unhandled rejection'));
}
