import { WRITE_PAYLOAD_LIMIT_BYTES } from '../contract.ts';
import { ViewkeeperError } from '../errors.ts';
import type { SinkDefinition, SinkOp } from '../sinks/define-sink.ts';
import { validateOp } from '../sinks/fields.ts';
import { addToJob, jobPrototype } from '../sinks/op-order.ts';
import { show } from '../views/params.ts';

export interface WriteRequest {
  sink: SinkDefinition;
  /** Validated, in job order, each stamped with its enqueue time and order. */
  ops: SinkOp[];
}

/** What the parser needs of a BullMQ job. */
export interface WriteJobLike {
  id?: string;
  name: string;
  data: unknown;
  timestamp: number;
  /** Bytes of the job's data as stored, when known (saves serialising it again to measure it). */
  dataBytes?: number;
}

const ALLOWED_KEYS = new Set(['ops']);

/**
 * Checks a write-behind job from any producer before anything is written: size, shape, sink name,
 * every op's id and fields, op ids unique within the job. Throws `ViewkeeperError` (E_BAD_PAYLOAD,
 * E_SINK_UNKNOWN) with one line naming the problem and the value.
 */
export function parseWriteJob(sinks: ReadonlyMap<string, SinkDefinition>, job: WriteJobLike): WriteRequest {
  let size = job.dataBytes;
  if (size === undefined) {
    try {
      size = Buffer.byteLength(JSON.stringify(job.data) ?? '');
    } catch {
      throw new ViewkeeperError('E_BAD_PAYLOAD', 'job data cannot be serialised as JSON');
    }
  }
  if (size > WRITE_PAYLOAD_LIMIT_BYTES) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `job data is ${size} bytes, over the ${WRITE_PAYLOAD_LIMIT_BYTES}-byte limit for write-behind jobs: split the ops over several jobs`,
    );
  }
  const sink = sinks.get(job.name);
  if (!sink) {
    const known = [...sinks.keys()].sort().join(', ');
    throw new ViewkeeperError(
      'E_SINK_UNKNOWN',
      `unknown sink ${show(job.name)}: known sinks are ${known || '(none)'}`,
    );
  }
  const data = job.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `job data must be an object like {"ops": [...]}, got ${show(data)}`,
    );
  }
  const record = data as Record<string, unknown>;
  const unknownKey = Object.keys(record).find((key) => !ALLOWED_KEYS.has(key));
  if (unknownKey !== undefined) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `unknown field ${show(unknownKey)} in job data: write-behind jobs take only "ops"`,
    );
  }
  const raw = record.ops;
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new ViewkeeperError('E_BAD_PAYLOAD', `"ops" must be a non-empty array of ops, got ${show(raw)}`);
  }
  const seen = new Set<string>();
  const ops: SinkOp[] = [];
  const prototype = jobPrototype(job.id, job.timestamp);
  for (let index = 0; index < raw.length; index++) {
    const op = validateOp(sink.name, sink.fields, raw[index], `op ${index}`, prototype) as SinkOp;
    if (seen.has(op.id)) {
      throw new ViewkeeperError(
        'E_BAD_PAYLOAD',
        `op ${index} of sink ${JSON.stringify(sink.name)}: id ${show(op.id)} appears twice in the job; every op needs its own id`,
      );
    }
    seen.add(op.id);
    addToJob(prototype, op);
    ops.push(op);
  }
  return { sink, ops };
}

/** The sinks of a registry's definitions (the registry keeps non-view definitions under `others`). */
export function sinksOf(definitions: Iterable<{ kind: string; name: string }>): Map<string, SinkDefinition> {
  const sinks = new Map<string, SinkDefinition>();
  for (const definition of definitions) {
    if (definition.kind === 'sink') sinks.set(definition.name, definition as SinkDefinition);
  }
  return sinks;
}
