import type { ViewDefinition } from '../views/define-view.ts';
import type { SinkDefinition } from './define-sink.ts';

/**
 * What is wrong with the views a sink refreshes after commit, one line each: a view that is not
 * defined, or params for a view that has no partial refresh. The daemon refuses to start on the
 * first; `viewkeeper check` lists them all.
 */
export function refreshTargetProblems(
  sink: SinkDefinition,
  viewOf: (name: string) => ViewDefinition | undefined,
): string[] {
  const problems: string[] = [];
  for (const target of sink.refresh) {
    const view = viewOf(target.view);
    if (!view) {
      problems.push(
        `sink ${JSON.stringify(sink.name)} refreshes view ${JSON.stringify(target.view)}, which is not defined`,
      );
    } else if (target.kind !== 'full' && !view.params) {
      problems.push(
        `sink ${JSON.stringify(sink.name)} refreshes view ${JSON.stringify(target.view)} by params, but the view has no partial refresh: use 'full'`,
      );
    }
  }
  return problems;
}
