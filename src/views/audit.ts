import type { Kysely } from 'kysely';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { auditKey } from '../redis/keys.ts';
import type { ViewDefinition } from './define-view.ts';
import { validateParams } from './params.ts';
import type { RefreshEngine } from './refresh-engine.ts';
import { type Content, rowContent, templateParser } from './view-content.ts';
import { indexKeysOf, sampleIndex } from './writers/view-slots.ts';

// The drift audit: does Redis still hold what the view's query returns? Something other than
// viewkeeper may have written, deleted or evicted a key (an app's stray HSET, a FLUSHDB, maxmemory
// eviction, a bug). A sampled audit picks keys the view wrote (its key index; for a zset, its
// members) and recomputes each through the view's partial query; a view without params is compared
// whole (its full query, against every key it holds). Differences are repaired through the refresh
// engine — the same runs, locks, sequences and events as any refresh — and counted per view.
//
// What a sample cannot see: a key the view never wrote (a row whose refresh was lost before its key
// existed) is in no index; a whole audit (views without params) or a full rebuild catches it.

type Row = Record<string, unknown>;

export interface AuditOptions {
  /** Keys (or members) compared, at most; views without params are compared whole. */
  sample: number;
  /** Refresh what differs. */
  repair: boolean;
}

export interface AuditResult {
  view: string;
  /** `sample`: keys picked from Redis and recomputed one by one; `whole`: the full query against everything. */
  mode: 'sample' | 'whole';
  checked: number;
  drifted: number;
  /** Drifted keys whose refresh ran (0 without `repair`). */
  repaired: number;
  /** The drifted keys (members for a zset: `key member`), at most 20. */
  keys: string[];
  at: string;
}

export interface AuditorOptions {
  // biome-ignore lint/suspicious/noExplicitAny: views bring their own database types
  db: Kysely<any>;
  /** The views Redis. */
  redis: RedisConnection;
  prefix: string;
  engine: RefreshEngine;
  logger: Logger;
  /**
   * A key that differs is read and recomputed once more after this long before it counts: a write
   * whose refresh is on its way is not drift. @defaultValue 500
   */
  recheckMs?: number;
}

export interface Auditor {
  audit(view: ViewDefinition, options: AuditOptions): Promise<AuditResult>;
}

const SHOWN_KEYS = 20;

/** One thing to compare: its Redis location and the params of the partial refresh that recomputes it. */
interface Probe {
  label: string;
  key: string;
  /** zset member; undefined for per-row keys. */
  member?: string;
  params: Row;
  /** What the query says the key holds, once checked. */
  want?: Content;
}

export function createAuditor(options: AuditorOptions): Auditor {
  const { db, redis, prefix, engine } = options;
  const logger = options.logger.child({ component: 'audit' });
  const recheckMs = options.recheckMs ?? 500;

  async function rows(view: ViewDefinition, params: Row | undefined): Promise<Row[]> {
    const query = view.query(db, params);
    let out: Row[];
    if (params && query.execute) out = await query.execute();
    else {
      out = [];
      for await (const row of query.stream({ chunkSize: 2000 })) out.push(row);
    }
    return view.map ? out.map(view.map) : out;
  }

  async function stored(view: ViewDefinition, probe: Probe): Promise<Content> {
    if (view.shape === 'zset') {
      const score = await redis.zscore(probe.key, probe.member!);
      return score === null ? null : String(Number(score));
    }
    if (view.shape === 'hash') {
      const hash = await redis.hgetall(probe.key);
      const entries = Object.entries(hash);
      return entries.length === 0 ? null : JSON.stringify(entries.sort());
    }
    return redis.get(probe.key);
  }

  async function expected(view: ViewDefinition, probe: Probe): Promise<Content> {
    for (const row of await rows(view, probe.params)) {
      if (view.shape === 'zset') {
        if (view.member!.fill(row) === probe.member) return String(Number(row[view.score!]));
      } else if (view.key.fill(row) === probe.key) {
        return rowContent(view, row);
      }
    }
    return null;
  }

  /** The probes of a sampled audit; undefined when the view must be compared whole. */
  async function sampleProbes(view: ViewDefinition, sample: number): Promise<Probe[] | undefined> {
    const names = Object.keys(view.params ?? {});
    if (view.shape === 'zset') {
      const parse = templateParser(view.member!, names);
      if (!parse) return undefined;
      const live = view.key.fill({});
      // Members in the set now (a stray member shows up here), and members partial refreshes wrote
      // (one deleted behind viewkeeper's back shows up there).
      const members = new Set([
        ...((await redis.zrandmember(live, sample)) as string[]),
        ...(await sampleIndex(redis, prefix, view.name, 'memberIndex', sample)),
      ]);
      return [...members]
        .slice(0, sample)
        .flatMap((member) => probe(view, parse(member), `${live} ${member}`, live, member));
    }
    const parse = templateParser(view.key, names);
    if (!parse) return undefined;
    const picked = await sampleIndex(redis, prefix, view.name, 'keyIndex', sample);
    return picked.flatMap((key) => probe(view, parse(key), key, key));
  }

  function probe(
    view: ViewDefinition,
    raw: Row | undefined,
    label: string,
    key: string,
    member?: string,
  ): Probe[] {
    if (!raw) return [];
    try {
      return [{ label, key, member, params: validateParams(view.name, view.params, raw) }];
    } catch {
      return []; // a key the template does not parse back into valid params: not auditable by sample
    }
  }

  async function drifting(view: ViewDefinition, probes: Probe[]): Promise<Probe[]> {
    const check = async (list: Probe[]) => {
      const out: Probe[] = [];
      for (const one of list) {
        const [have, want] = [await stored(view, one), await expected(view, one)];
        one.want = want;
        // A key of a view with a ttl may be gone because it expired: that is the ttl, not drift.
        if (have !== want && !(have === null && view.ttl > 0)) out.push(one);
      }
      return out;
    };
    const suspects = await check(probes);
    if (suspects.length === 0) return suspects;
    await new Promise((resolve) => setTimeout(resolve, recheckMs));
    return check(suspects);
  }

  /** Everything the view's full query says against everything Redis holds for it: the differing keys. */
  async function wholeDiff(
    view: ViewDefinition,
  ): Promise<{ checked: number; keys: string[]; probes?: Probe[] }> {
    const result = await rows(view, undefined);
    if (view.shape === 'json') {
      const live = view.key.fill({});
      const want = `[${result.map((row) => JSON.stringify(row)).join(',')}]`;
      return { checked: 1, keys: (await redis.get(live)) === want ? [] : [live] };
    }
    if (view.shape === 'zset') {
      const live = view.key.fill({});
      const want = new Map(result.map((row) => [view.member!.fill(row), Number(row[view.score!])]));
      const flat = await redis.zrange(live, '0', '-1', 'WITHSCORES');
      const have = new Map<string, number>();
      for (let i = 0; i < flat.length; i += 2) have.set(flat[i]!, Number(flat[i + 1]));
      const members = new Set([...want.keys(), ...have.keys()]);
      const differing = [...members].filter((member) => want.get(member) !== have.get(member));
      return { checked: members.size, keys: differing.map((member) => `${live} ${member}`) };
    }
    const want = new Map(result.map((row) => [view.key.fill(row), rowContent(view, row)]));
    const indexed: string[] = [];
    for (const index of await indexKeysOf(redis, prefix, view.name, 'keyIndex')) {
      indexed.push(...(await redis.zrange(index, '0', '-1')));
    }
    const all = [...new Set([...want.keys(), ...indexed])];
    const differing: Probe[] = [];
    for (const key of all) {
      const one: Probe = { label: key, key, params: {}, want: want.get(key) ?? null };
      const have = await stored(view, one);
      if (have !== one.want && !(have === null && view.ttl > 0)) differing.push(one);
    }
    return { checked: all.length, keys: differing.map((one) => one.key), probes: differing };
  }

  async function record(result: AuditResult): Promise<void> {
    await redis
      .multi()
      .hincrby(auditKey(prefix, result.view), 'checked', result.checked)
      .hincrby(auditKey(prefix, result.view), 'drifted', result.drifted)
      .hincrby(auditKey(prefix, result.view), 'repaired', result.repaired)
      .hset(auditKey(prefix, result.view), {
        last_at: result.at,
        last_mode: result.mode,
        last_checked: result.checked,
        last_drifted: result.drifted,
        last_repaired: result.repaired,
        last_keys: JSON.stringify(result.keys),
      })
      .exec();
  }

  /**
   * A refresh rewrites a hash's fields but keeps fields the view does not have (HSET, not DEL: see
   * write-rows.lua), so a stray field written by someone else would survive the repair. Those are
   * removed first; the view's own fields are left for the refresh to rewrite, so readers never see
   * the key missing.
   */
  async function dropStrayFields(view: ViewDefinition, drifted: Probe[]): Promise<void> {
    if (view.shape !== 'hash') return;
    for (const one of drifted) {
      if (!one.want) continue;
      const own = new Set((JSON.parse(one.want) as [string, string][]).map(([field]) => field));
      const stray = (await redis.hkeys(one.key)).filter((field) => !own.has(field));
      if (stray.length > 0) await redis.hdel(one.key, ...stray);
    }
  }

  const runOptions = { trigger: 'audit', ignoreWindow: true };

  return {
    async audit(view, { sample, repair }) {
      const probes = await sampleProbes(view, sample);
      let result: AuditResult;
      if (probes) {
        const drifted = await drifting(view, probes);
        let repaired = 0;
        if (repair && drifted.length > 0) {
          await dropStrayFields(view, drifted);
          const outcomes = await engine.refreshBatch(
            view,
            drifted.map((one) => one.params),
            runOptions,
          );
          repaired = outcomes.filter((outcome) => outcome.status === 'done').length;
        }
        result = {
          view: view.name,
          mode: 'sample',
          checked: probes.length,
          drifted: drifted.length,
          repaired,
          keys: drifted.slice(0, SHOWN_KEYS).map((one) => one.label),
          at: new Date().toISOString(),
        };
      } else {
        let diff = await wholeDiff(view);
        if (diff.keys.length > 0) {
          await new Promise((resolve) => setTimeout(resolve, recheckMs));
          diff = await wholeDiff(view);
        }
        let repaired = 0;
        if (repair && diff.keys.length > 0) {
          await dropStrayFields(view, diff.probes ?? []);
          const outcome = await engine.refresh(view, undefined, runOptions);
          if (outcome.status === 'done') repaired = diff.keys.length;
        }
        result = {
          view: view.name,
          mode: 'whole',
          checked: diff.checked,
          drifted: diff.keys.length,
          repaired,
          keys: diff.keys.slice(0, SHOWN_KEYS),
          at: new Date().toISOString(),
        };
      }
      await record(result);
      if (result.drifted > 0) {
        logger.warn(
          {
            view: view.name,
            mode: result.mode,
            checked: result.checked,
            drifted: result.drifted,
            repaired: result.repaired,
            keys: result.keys.slice(0, 5),
          },
          'drift found',
        );
      }
      return result;
    },
  };
}
