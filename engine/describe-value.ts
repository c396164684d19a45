/**
 * A short, one-line preview of any value for an error message, written like JSON.stringify
 * (`["a",1]`, `{"k":true}`) for what JSON can hold. Unlike JSON.stringify it never
 * throws (a value nested 100 000 deep overflows the stack there), never prints a 100 MB string,
 * and shows Infinity, -Infinity and NaN as themselves instead of `null`.
 */
export function describeValue(value: unknown, maxChars = 60): string {
  const s = preview(value, maxChars + 1, 0);
  return s.length > maxChars ? `${s.slice(0, Math.max(0, maxChars - 3))}...` : s;
}

/** Deeper than this a preview prints `[...]` / `{...}`: the message is about the top of the value. */
const MAX_DEPTH = 4;

/** `budget` is how many characters are still worth producing; past it the caller truncates. */
function preview(v: unknown, budget: number, depth: number): string {
  switch (typeof v) {
    case 'string': return quote(v.length > budget ? v.slice(0, budget) : v);
    case 'number': return Object.is(v, -0) ? '-0' : String(v);
    case 'boolean': return String(v);
    case 'undefined': return 'undefined';
    case 'bigint': return `${v}n`;
    case 'object': break;
    default: return typeof v; // function, symbol
  }
  if (v === null) return 'null';
  const isArray = Array.isArray(v);
  if (depth >= MAX_DEPTH) return isArray ? '[...]' : '{...}';
  let out = isArray ? '[' : '{';
  let first = true;
  const items: Iterable<unknown> = isArray ? (v as unknown[]) : keysOf(v as object);
  for (const item of items) {
    if (out.length > budget) return `${out}...`;
    if (!first) out += ',';
    first = false;
    if (isArray) out += preview(item, budget - out.length, depth + 1);
    else {
      const key = item as string;
      out += `${quote(key.length > budget ? key.slice(0, budget) : key)}:${preview((v as Record<string, unknown>)[key], budget - out.length, depth + 1)}`;
    }
  }
  return out + (isArray ? ']' : '}');
}

/** JSON.stringify leaves U+2028 and U+2029 as they are; they end a line in many viewers. */
function quote(s: string): string {
  return JSON.stringify(s).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** Own enumerable keys, lazily: an object with a million keys costs only the ones printed. */
function* keysOf(o: object): Generator<string> {
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k)) yield k;
}

/**
 * Text from elsewhere (a JSON.parse message quotes the input, newlines included) made fit for a
 * one-line error: control characters escaped, cut to `maxChars`.
 */
export function oneLine(text: string, maxChars = 200): string {
  const cut = text.length > maxChars ? `${text.slice(0, Math.max(0, maxChars - 3))}...` : text;
  return cut.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}
