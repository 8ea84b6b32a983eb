// The library surface: what apps and view files import from 'viewkeeper'.
export type { CachedOptions, Loader } from './client/cached.ts';
export {
  type ClientHealth,
  createClient,
  type RefreshOptions,
  type RefreshOutcome,
  type ViewkeeperClient,
} from './client/create-client.ts';
export type { CacheDefaults, ClientLogger, ClientOptions, L1Options, OnMiss } from './client/options.ts';
export type { ClientStats } from './client/stats.ts';
export type { NamedViewDescriptor, ViewDescriptor, ViewMap, ViewParams } from './client/view-descriptors.ts';
export type { ScoredMember, ViewReadOptions, ZsetReadOptions } from './client/views.ts';
export type { WriteInput } from './client/write.ts';
export type { CacheKeyEvent, InvalidationEvent, TagEvent, ViewEvent } from './contract.ts';
export type { Database } from './db/schema.ts';
export { type ErrorCode, ViewkeeperError } from './errors.ts';
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
