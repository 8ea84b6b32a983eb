import type { Kysely } from 'kysely';

// Migration 0002 once created the demo application's tables here. The demo now has migrations of its
// own (demo/migrations/, applied only when asked for), so viewkeeper's schema never touches a user's
// `public` tables. The name stays: databases migrated before the move record 0002 as applied, and
// Kysely refuses to run when an applied migration is missing.
export async function up(_db: Kysely<unknown>): Promise<void> {}

export async function down(_db: Kysely<unknown>): Promise<void> {}
