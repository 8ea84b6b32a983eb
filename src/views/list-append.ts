import { ViewkeeperError } from '../errors.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { viewKeys } from '../redis/keys.ts';
import { placementOf } from '../redis/placement.ts';
import type { Scripts } from '../redis/scripts.ts';
import type { ViewDefinition } from './define-view.ts';
import type { RunLock } from './run-lock.ts';
import { createElementEncoder, elementProblem, groupParams, orderKeyOf } from './writers/group-elements.ts';
import type { Row } from './writers/shape-writer.ts';
import { viewSlots } from './writers/view-slots.ts';

export interface AppendOutcome {
  /** Elements pushed (an element already in its list is not pushed again). */
  appended: number;
  /**
   * Params of the groups an append could not be applied to (the element belongs below the list's
   * head, or cannot be stored): refresh these from the database instead. Deduplicated.
   */
  refresh: Record<string, unknown>[];
  /** One line per row that cannot be appended at all, nor refreshed by params (logged by the caller). */
  problems: string[];
}

/**
 * Incremental appends to `list` views: one row the view's query would return (now, after a
 * write) becomes one element pushed onto the head of its group's list, trimmed to `maxLength`
 * (append-list.lua), with the version bump and event of finish-run.lua in the same MULTI.
 */
export interface ListAppender {
  append(view: ViewDefinition, rows: Row[]): Promise<AppendOutcome>;
}

export function createListAppender(options: {
  redis: RedisConnection;
  scripts: Scripts;
  prefix: string;
  lock: RunLock;
}): ListAppender {
  const { redis, scripts, prefix, lock } = options;
  const placement = placementOf(redis);

  /**
   * Redis Cluster: the groups' lists are in many slots and the metadata in another, so one MULTI
   * cannot hold them all. The sequence is taken first (so a rebuild that started earlier still skips
   * these groups), then one append-list.lua call per slot with that slot's index and heads — each
   * group's check-and-push stays atomic — then the version bump and event.
   */
  async function appendOnCluster(
    view: ViewDefinition,
    triples: [string, string, string][],
    rowCount: number,
    changed: string[],
  ): Promise<{ count: number; refused: string[] }> {
    const seq = await lock.sequence(view);
    const slots = viewSlots(redis, prefix, view.name);
    const groups = placement.group(triples, ([key]) => key);
    await slots.register(groups.keys());
    const replies = await Promise.all(
      [...groups].map(([slot, group]) => {
        const keys = slots.keysOf(slot);
        return scripts.run<[number, ...string[]]>(
          'vkAppendList',
          [keys.keyIndex, keys.floor, keys.heads],
          [view.ttl, view.list!.maxLength, seq, ...group.flat()],
        );
      }),
    );
    await lock.finish(view, [], '', {
      kind: 'partial',
      ms: 0,
      summary: { rows: rowCount, changedKeys: changed, superseded: false },
    });
    return {
      count: replies.reduce((sum, [count]) => sum + count, 0),
      refused: replies.flatMap(([, ...refused]) => refused),
    };
  }

  return {
    async append(view, rows) {
      if (view.shape !== 'list') {
        throw new ViewkeeperError(
          'E_VIEW_DEFINITION',
          `view ${JSON.stringify(view.name)} is a ${view.shape} view: only list views take appends`,
        );
      }
      const outcome: AppendOutcome = { appended: 0, refresh: [], problems: [] };
      const elementOf = createElementEncoder(view);
      const refreshed = new Set<string>();
      const refreshGroup = (key: string, row: Row) => {
        if (refreshed.has(key)) return;
        refreshed.add(key);
        const params = groupParams(view, row);
        if (params) outcome.refresh.push(params);
        else
          outcome.problems.push(
            `view ${view.name}: ${key} cannot be refreshed by params (declare its key columns as params)`,
          );
      };
      const triples: [string, string, string][] = [];
      const rowOf = new Map<string, Row>();
      for (const raw of rows) {
        const row = view.map ? view.map(raw) : raw;
        const key = view.key.fill(row);
        // Only a newest-first list grows at its head; any other order needs the group's query.
        if (view.list!.order !== 'desc') {
          refreshGroup(key, row);
          continue;
        }
        const element = elementOf(row);
        const problem = elementProblem(view, key, element);
        if (problem) {
          outcome.problems.push(problem);
          continue;
        }
        rowOf.set(key, row);
        triples.push([key, orderKeyOf(view, row), element]);
      }
      // Oldest first: each push must land at the head, above the one before it.
      triples.sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
      const args = triples.flat();
      if (args.length > 0 && placement.cluster) {
        const appended = await appendOnCluster(view, triples, rows.length, [...rowOf.keys()]);
        outcome.appended = appended.count;
        for (const key of appended.refused) refreshGroup(key, rowOf.get(key)!);
      } else if (args.length > 0) {
        const keys = viewKeys(prefix, view.name);
        const changed = [...rowOf.keys()];
        const multi = redis.multi();
        scripts.queue(
          multi,
          'vkAppendList',
          [keys.keyIndex, keys.meta, keys.heads],
          [view.ttl, view.list!.maxLength, '', ...args],
        );
        lock.queueFinish(multi, view, {
          kind: 'partial',
          ms: 0,
          summary: { rows: rows.length, changedKeys: changed, superseded: false },
        });
        const results = await multi.exec();
        const failed = results?.find(([error]) => error !== null);
        if (!results || failed) throw failed?.[0] ?? new Error('append transaction was discarded');
        const [appended, ...refused] = results[0]![1] as [number, ...string[]];
        outcome.appended = appended;
        for (const key of refused) refreshGroup(key, rowOf.get(key)!);
      }
      return outcome;
    },
  };
}
