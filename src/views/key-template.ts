import { ViewkeeperError } from '../errors.ts';

/**
 * A key or member pattern such as `user_stats:{user_id}`: literal text with `{column}` placeholders
 * filled from a row (or from refresh params); `{{` and `}}` are literal braces (splitTemplate).
 */
export interface KeyTemplate {
  source: string;
  /** Placeholder names in order of appearance. */
  columns: string[];
  /** The literal text around them (escapes resolved): one more than `columns`. */
  literals: string[];
  fill(values: Record<string, unknown>): string;
  /** Whether `names` supplies every placeholder (so the key is known without running the query). */
  isCoveredBy(names: Iterable<string>): boolean;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Splits a template into literal text and placeholders, left to right: `{{` is a literal `{`, `}}`
 * a literal `}`, `{name}` a placeholder (the rule of Python's str.format and Rust's format!). So
 * `{{tenant}}` is the literal text `{tenant}`, and `{{{tenant_id}}}` is `{`, the placeholder
 * tenant_id, `}`: a Redis Cluster hash tag holding the row's tenant_id. Returns literal, column,
 * literal, …, literal (always an odd count), or the reason the template is malformed.
 */
export function splitTemplate(source: string): string[] | string {
  const parts: string[] = [];
  let literal = '';
  for (let i = 0; i < source.length; i++) {
    const char = source[i]!;
    if ((char === '{' || char === '}') && source[i + 1] === char) {
      literal += char;
      i += 1;
    } else if (char === '{') {
      const close = source.indexOf('}', i + 1);
      const name = close === -1 ? '' : source.slice(i + 1, close);
      if (!NAME.test(name))
        return 'has an unbalanced brace: placeholders look like {column_name}, literal braces are written {{ and }}';
      parts.push(literal, name);
      literal = '';
      i = close;
    } else if (char === '}') {
      return 'has an unbalanced brace: placeholders look like {column_name}, literal braces are written {{ and }}';
    } else {
      literal += char;
    }
  }
  parts.push(literal);
  return parts;
}

export function parseKeyTemplate(source: string, what: string): KeyTemplate {
  if (typeof source !== 'string' || source.length === 0) {
    throw new ViewkeeperError(
      'E_VIEW_DEFINITION',
      `${what} must be a non-empty string, got ${JSON.stringify(source)}`,
    );
  }
  const split = splitTemplate(source);
  if (typeof split === 'string') {
    throw new ViewkeeperError('E_VIEW_DEFINITION', `${what} ${JSON.stringify(source)} ${split}`);
  }
  const parts = split; // literal, column, literal, column, …, literal
  const columns = parts.filter((_, i) => i % 2 === 1);
  return {
    source,
    columns,
    literals: parts.filter((_, i) => i % 2 === 0),
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
