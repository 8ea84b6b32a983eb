// The library surface, `viewkeeper`: view and sink definitions (what jobs/ files import) and the
// client. An app that only reads and enqueues can import `viewkeeper/client` instead, which loads no
// daemon code.

export { sql } from 'kysely';
export * from './client/index.ts';
export type { ColumnType, IncrementSpec, SinkTools, UpsertSpec } from './sinks/apply-helpers.ts';
export {
  defineSink,
  type RefreshTarget,
  type SinkDefinition,
  type SinkOp,
  type SinkOptions,
} from './sinks/define-sink.ts';
export type { FieldSpec, FieldsSpec, FieldType, FieldValues } from './sinks/fields.ts';
export {
  defineView,
  type StreamableQuery,
  type ViewDefinition,
  type ViewOptions,
  type ViewSchedule,
  type ViewShape,
} from './views/define-view.ts';
export type { ParamSpec, ParamType, ParamValues } from './views/params.ts';
