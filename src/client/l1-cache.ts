/**
 * The in-process L1: an LRU bounded by entry count and by (estimated) bytes. Every entry belongs to
 * invalidation groups — `k:{redis key}` and `v:{view}` for view reads, `c:{key}` and `t:{tag}` for
 * `cached()` entries — so an event drops exactly the entries it concerns.
 *
 * Fills race with events: a read that started before an invalidation may return the old value after
 * the event has already been handled. Each read therefore takes a ticket first; an invalidation of
 * one of the ticket's groups (or a clear) marks it dirty, and a dirty ticket's value is not stored.
 */

export interface L1Entry<T = unknown> {
  value: T;
  /** Estimated size: what `maxBytes` counts. */
  bytes: number;
  groups: string[];
  /** Served as a hit until then (ms since epoch); kept afterwards as a fallback while Redis is down. */
  freshUntil: number;
  /** `cached()` entries: the envelope id (a key event carrying the same id is our own write). */
  id?: string;
}

export interface L1Ticket {
  readonly groups: string[];
  /** Id of the entry this read expects to store (own writes): its key event does not dirty it. */
  id?: string;
  dirty: boolean;
}

export interface L1Options {
  maxEntries: number;
  maxBytes: number;
}

export interface L1Cache {
  get(key: string): L1Entry | undefined;
  /** Takes a ticket before reading from Redis. Release it with `fill` or `abandon`. */
  begin(groups: string[], id?: string): L1Ticket;
  /** Stores `entry` unless the ticket went dirty; returns whether it was stored. Releases the ticket. */
  fill(key: string, entry: L1Entry, ticket: L1Ticket): boolean;
  abandon(ticket: L1Ticket): void;
  /** Drops every entry of `group`; `exceptId` keeps the entry with that id (our own write). */
  invalidate(group: string, exceptId?: string): number;
  delete(key: string): void;
  clear(): void;
  readonly size: number;
  readonly bytes: number;
}

export function createL1(options: L1Options): L1Cache {
  const entries = new Map<string, L1Entry>();
  const groups = new Map<string, Set<string>>();
  const tickets = new Map<string, Set<L1Ticket>>();
  let bytes = 0;

  function unlink(key: string, entry: L1Entry): void {
    entries.delete(key);
    bytes -= entry.bytes;
    for (const group of entry.groups) {
      const members = groups.get(group);
      members?.delete(key);
      if (members?.size === 0) groups.delete(group);
    }
  }

  function release(ticket: L1Ticket): void {
    for (const group of ticket.groups) {
      const pending = tickets.get(group);
      pending?.delete(ticket);
      if (pending?.size === 0) tickets.delete(group);
    }
  }

  return {
    get(key) {
      const entry = entries.get(key);
      if (entry) {
        // Most recently used last: Map keeps insertion order.
        entries.delete(key);
        entries.set(key, entry);
      }
      return entry;
    },

    begin(ticketGroups, id) {
      const ticket: L1Ticket = { groups: ticketGroups, id, dirty: false };
      for (const group of ticketGroups) {
        const pending = tickets.get(group);
        if (pending) pending.add(ticket);
        else tickets.set(group, new Set([ticket]));
      }
      return ticket;
    },

    fill(key, entry, ticket) {
      release(ticket);
      if (ticket.dirty || entry.bytes > options.maxBytes) return false;
      const previous = entries.get(key);
      if (previous) unlink(key, previous);
      entries.set(key, entry);
      bytes += entry.bytes;
      for (const group of entry.groups) {
        const members = groups.get(group);
        if (members) members.add(key);
        else groups.set(group, new Set([key]));
      }
      for (const [oldest, victim] of entries) {
        if (entries.size <= options.maxEntries && bytes <= options.maxBytes) break;
        unlink(oldest, victim);
      }
      return true;
    },

    abandon: release,

    invalidate(group, exceptId) {
      for (const ticket of tickets.get(group) ?? []) {
        if (exceptId === undefined || ticket.id !== exceptId) ticket.dirty = true;
      }
      const members = groups.get(group);
      if (!members) return 0;
      let dropped = 0;
      for (const key of [...members]) {
        const entry = entries.get(key);
        if (!entry || (exceptId !== undefined && entry.id === exceptId)) continue;
        unlink(key, entry);
        dropped += 1;
      }
      return dropped;
    },

    delete(key) {
      const entry = entries.get(key);
      if (entry) unlink(key, entry);
    },

    clear() {
      for (const pending of tickets.values()) for (const ticket of pending) ticket.dirty = true;
      entries.clear();
      groups.clear();
      bytes = 0;
    },

    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}
