import { type Kysely, sql } from 'kysely';

// The demo application's schema (DESIGN.md, "The demo application"), with the indexes its views use.
// `if not exists` throughout: databases migrated before the demo had its own migrations already have
// these tables (viewkeeper's migration 0002 created them), and this must then change nothing.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('users')
    .ifNotExists()
    .addColumn('id', 'bigint', (col) => col.primaryKey())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('email', 'text', (col) => col.notNull())
    .addColumn('org_id', 'bigint')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('posts')
    .ifNotExists()
    .addColumn('id', 'bigint', (col) => col.primaryKey())
    .addColumn('user_id', 'bigint', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('title', 'text', (col) => col.notNull())
    .addColumn('upvotes', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  // user_stats groups posts by author; covering upvotes keeps it an index-only scan.
  await sql`create index if not exists posts_user_id_idx on posts (user_id) include (upvotes)`.execute(db);

  await db.schema
    .createTable('votes')
    .ifNotExists()
    .addColumn('post_id', 'bigint', (col) => col.notNull().references('posts.id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('value', 'smallint', (col) => col.notNull().check(sql`value in (-1, 1)`))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('votes_pkey', ['post_id', 'user_id'])
    .execute();
  // trending / trending_posts read the last 24 h of votes; deleting a user scans votes by user_id.
  await sql`create index if not exists votes_created_at_idx on votes (created_at) include (post_id, value)`.execute(
    db,
  );
  await sql`create index if not exists votes_user_id_idx on votes (user_id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('votes').ifExists().execute();
  await db.schema.dropTable('posts').ifExists().execute();
  await db.schema.dropTable('users').ifExists().execute();
}
