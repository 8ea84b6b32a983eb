import { ViewkeeperError } from '../errors.ts';

/**
 * A key or member pattern such as `user_stats:{user_id}`: literal text with `{column}` placeholders
 * filled from a row (or from refresh params).
 */
export interface KeyTemplate {
  source: string;
  /** Placeholder names in order of appearance. */
  columns: string[];
  fill(values: Record<string, unknown>): string;
  /** Whether `names` supplies every placeholder (so the key is known without running the query). */
  isCoveredBy(names: Iterable<string>): boolean;
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export function parseKeyTemplate(source: string, what: string): KeyTemplate {
  if (typeof source !== 'string' || source.length === 0) {
    throw new ViewkeeperError(
      'E_VIEW_DEFINITION',
      `${what} must be a non-empty string, got ${JSON.stringify(source)}`,
    );
  }
  const stray = source.replace(PLACEHOLDER, '');
  if (stray.includes('{') || stray.includes('}')) {
    throw new ViewkeeperError(
      'E_VIEW_DEFINITION',
      `${what} ${JSON.stringify(source)} has an unbalanced brace: placeholders look like {column_name}`,
    );
  }
  const columns = [...source.matchAll(PLACEHOLDER)].map((match) => match[1]!);
  const parts = source.split(PLACEHOLDER); // literal, column, literal, column, …, literal
  return {
    source,
    columns,
    fill(values) {
      let out = parts[0]!;
      for (let i = 1; i < parts.length; i += 2) {
        const value = values[parts[i]!];
        if (value === undefined || value === null) {
          throw new ViewkeeperError(
            'E_VIEW_DEFINITION',
            `${what} ${JSON.stringify(source)} needs column ${JSON.stringify(parts[i])}, which the row does not have (or is null)`,
          );
        }
        out += (value instanceof Date ? value.toISOString() : String(value)) + parts[i + 1]!;
      }
      return out;
    },
    isCoveredBy(names) {
      const available = new Set(names);
      return columns.every((column) => available.has(column));
    },
  };
}
