import type { ColumnType, Generated } from 'kysely';

// The demo application's tables (demo/migrations/), as its view and sink definitions see them: the
// `DB` a user passes to defineView<DB>() / defineSink<DB>() for their own schema.

/** bigint columns come back from pg as strings (no precision loss); accept numbers on the way in. */
export type BigIntColumn = ColumnType<string, string | number | bigint, string | number | bigint>;
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface UsersTable {
  id: BigIntColumn;
  name: string;
  email: string;
  org_id: ColumnType<string | null, string | number | bigint | null, string | number | bigint | null>;
  created_at: Timestamp;
}

export interface PostsTable {
  id: BigIntColumn;
  user_id: BigIntColumn;
  title: string;
  upvotes: Generated<number>;
  created_at: Timestamp;
}

export interface VotesTable {
  post_id: BigIntColumn;
  user_id: BigIntColumn;
  value: number;
  created_at: Timestamp;
  /** The write-behind order of the op whose value the row holds (the votes sink's `order` column). */
  write_order: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface Database {
  users: UsersTable;
  posts: PostsTable;
  votes: VotesTable;
}
