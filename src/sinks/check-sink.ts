import type { Kysely, Transaction } from 'kysely';
import { columnsOf, uniqueKeys } from '../db/catalog.ts';
import type { ReadOnlySession } from '../db/read-only.ts';
import { describeError } from '../errors.ts';
import type { CheckReport } from '../views/check-view.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import { validateParams } from '../views/params.ts';
import { createSinkTools, type IncrementSpec, type SinkTools, type UpsertSpec } from './apply-helpers.ts';
import type { SinkDefinition, SinkOp } from './define-sink.ts';
import { type FieldType, type ResolvedField, validateOp } from './fields.ts';
import { refreshTargetProblems } from './refresh-targets.ts';

// `viewkeeper check` for one sink. A sink does not declare its tables: `apply` names them when it
// calls the upsert/increment tools. So check runs `apply` once on a made-up op, inside the
// read-only session, with tools that record what they are asked to write (validating the spec as
// the real ones do) instead of writing, and then looks the recorded tables, columns and conflict
// keys up in the catalogs. SQL that `apply` runs itself is planned by Postgres (missing tables and
// columns fail); its first write is refused by the read-only transaction, and what comes after it
// in `apply` is not reached.

const SAMPLE: Record<FieldType, unknown> = {
  bigint: '1',
  integer: 1,
  number: 1,
  text: 'x',
  uuid: '00000000-0000-0000-0000-000000000000',
  boolean: true,
  timestamptz: '2026-01-01T00:00:00Z',
};

/** A valid op of the sink, as `apply` would receive it. */
function sampleOp(sink: SinkDefinition): SinkOp {
  const raw: Record<string, unknown> = { id: 'viewkeeper-check' };
  for (const field of sink.fields) raw[field.name] = sampleValue(field);
  const op = validateOp(sink.name, sink.fields, raw, 'the check op') as SinkOp;
  Object.defineProperty(op, 'at', { value: new Date(), enumerable: false });
  return op;
}

function sampleValue(field: ResolvedField): unknown {
  return field.oneOf?.[0] ?? SAMPLE[field.type];
}

/** The session's Kysely, inside its transaction, as `apply` and `lookup` expect it. */
// biome-ignore lint/suspicious/noExplicitAny: any database type
const asTransaction = (db: Kysely<any>) => db as unknown as Transaction<any>;

type Recorded = { kind: 'upsert'; spec: UpsertSpec<object> } | { kind: 'increment'; spec: IncrementSpec };

/** Tools that validate and record each call, and write nothing (as if every row were already newer). */
function recordingTools(real: SinkTools, recorded: Recorded[]): SinkTools {
  return {
    async upsert(_ops, spec) {
      await real.upsert([], spec);
      recorded.push({ kind: 'upsert', spec: spec as UpsertSpec<object> });
      return [];
    },
    async increment(spec) {
      await real.increment({ ...spec, rows: [] });
      recorded.push({ kind: 'increment', spec });
      return 0;
    },
  };
}

async function tableProblems(session: ReadOnlySession, call: Recorded): Promise<string[]> {
  const { table } = call.spec;
  const found = await session.attempt((trx) => columnsOf(trx, table));
  if (!found.ok) return [`${call.kind} table ${table}: ${describeError(found.error)}`];
  const columns = found.value;
  if (!columns) return [`${call.kind} table ${table} does not exist`];
  const wanted =
    call.kind === 'upsert'
      ? [...Object.keys(call.spec.columns), ...(call.spec.order === undefined ? [] : [call.spec.order])]
      : [call.spec.key, call.spec.column];
  const absent = wanted.filter((column) => !columns.includes(column));
  if (absent.length > 0) return [`${call.kind} ${table}: no column ${absent.join(', ')} in ${table}`];
  if (call.kind === 'increment') return [];
  const key = [...call.spec.key].sort();
  const keys = await session.attempt((trx) => uniqueKeys(trx, table));
  const matches = keys.ok && keys.value.some((unique) => unique.join() === key.join());
  return matches
    ? []
    : [
        `upsert ${table}: no unique index on (${call.spec.key.join(', ')}), which on conflict (${call.spec.key.join(', ')}) needs`,
      ];
}

export async function checkSink(
  session: ReadOnlySession,
  sink: SinkDefinition,
  viewOf: (name: string) => ViewDefinition | undefined,
): Promise<CheckReport> {
  const problems = refreshTargetProblems(sink, viewOf).map((line) =>
    line.replace(/^sink "([^"]+)" /, 'sink $1: '),
  );
  const notes: string[] = [];
  const problem = (text: string) => problems.push(`sink ${sink.name}: ${text}`);
  const op = sampleOp(sink);

  const recorded: Recorded[] = [];
  const applied = await session.attempt(
    (db) =>
      sink.apply(
        asTransaction(db),
        [op],
        recordingTools(createSinkTools(asTransaction(db), sink.name), recorded),
      ),
    { skipWrites: true },
  );
  if (!applied.ok) problem(`apply on a test op failed: ${describeError(applied.error)}`);
  for (const call of recorded) for (const line of await tableProblems(session, call)) problem(line);

  // Params the refresh targets compute must be ones their view accepts.
  for (const target of sink.refresh) {
    const view = viewOf(target.view);
    // An append's row is an element, not params.
    if (!view?.params || target.kind === 'full' || target.kind === 'append') continue;
    const computed =
      target.kind === 'params'
        ? await session.attempt(async () => target.params(op))
        : await session.attempt((db) => target.lookup(asTransaction(db), [op]));
    if (!computed.ok) {
      problem(`refresh.${target.view} on a test op failed: ${describeError(computed.error)}`);
      continue;
    }
    const list = computed.value === undefined ? [] : [computed.value].flat();
    try {
      for (const params of list) validateParams(view.name, view.params, params);
    } catch (error) {
      problem(`refresh.${target.view} gives params the view refuses: ${describeError(error)}`);
    }
  }
  return { problems, notes };
}
