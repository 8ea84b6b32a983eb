// The client-only entry, `viewkeeper/client`: what an app server needs to read views, enqueue refreshes,
// write behind and cache. It loads no Postgres, Kysely, cron or logging code (a test asserts it).

export type {
  CacheKeyEvent,
  InvalidationEvent,
  RefreshEntryResult,
  RefreshJobResult,
  TagEvent,
  ViewEvent,
} from '../contract.ts';
export { type ErrorCode, ViewkeeperError } from '../errors.ts';
export type { AfterCommitOptions, SqlQueryable } from './after-commit.ts';
export type { CachedOptions, Loader } from './cached.ts';
export {
  type ClientHealth,
  createClient,
  type RefreshOptions,
  type RefreshOutcome,
  type ViewkeeperClient,
} from './create-client.ts';
export type { ListReadOptions } from './group-views.ts';
export type { CacheDefaults, ClientLogger, ClientOptions, L1Options, OnMiss } from './options.ts';
export type { ClientStats } from './stats.ts';
export type { NamedViewDescriptor, ViewDescriptor, ViewMap, ViewParams } from './view-descriptors.ts';
export type { ScoredMember, ViewReadOptions, ZsetReadOptions } from './views.ts';
export type { WriteInput } from './write.ts';
export type { WriteWaitOptions } from './write-wait.ts';
