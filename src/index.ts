// The library surface: what apps and view files import from 'viewkeeper'.
export type { Database } from './db/schema.ts';
export { type ErrorCode, ViewkeeperError } from './errors.ts';
export {
  defineView,
  type StreamableQuery,
  type ViewDefinition,
  type ViewOptions,
  type ViewSchedule,
  type ViewShape,
} from './views/define-view.ts';
export type { ParamSpec, ParamType, ParamValues } from './views/params.ts';
