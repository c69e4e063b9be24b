// Expressions for the explorer unit: text → node list, and the filter
// builder's condition rows → node list. The unit takes an expression as
// {nodes: [{op, column?, int?, float?, string?, bool?, type?, args?}], root?}
// where args point to earlier nodes (docs/explorer.md); both builders here
// emit nodes in post-order, so that always holds. No DOM: Node can import it.

/** A parse or build error: `pos` is the character offset in the text (or -1). */
export class ExprError extends Error {
  constructor(message, pos = -1) { super(message); this.name = 'ExprError'; this.pos = pos; }
}

const FUNCS = {
  len: ['len', 1], lower: ['lower', 1], upper: ['upper', 1],
  is_null: ['is_null', 1], not_null: ['not_null', 1], isnull: ['is_null', 1],
  contains: ['contains', 2], prefix: ['prefix', 2], starts_with: ['prefix', 2], suffix: ['suffix', 2], ends_with: ['suffix', 2],
  int: ['cast', 1, 'int'], float: ['cast', 1, 'float'], string: ['cast', 1, 'string'], bool: ['cast', 1, 'bool'],
};
const CMP = { '==': 'eq', '=': 'eq', '!=': 'ne', '<>': 'ne', '<': 'lt', '<=': 'le', '>': 'gt', '>=': 'ge' };

function tokenize(src) {
  const toks = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) { i++; continue; }
    const start = i;
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i));
      if (!m) throw new ExprError(`expected a number at ${i + 1}`, i);
      toks.push({ t: 'num', v: m[0], pos: start });
      i += m[0].length;
    } else if (c === '"' || c === "'" || c === '`') {
      let v = '';
      i++;
      for (;;) {
        if (i >= src.length) throw new ExprError(`unterminated ${c === '`' ? 'column name' : 'string'} starting at ${start + 1}: expected a closing ${c}`, start);
        if (src[i] === '\\' && c !== '`' && i + 1 < src.length) { v += src[i + 1]; i += 2; continue; }
        if (src[i] === c) { i++; break; }
        v += src[i++];
      }
      toks.push({ t: c === '`' ? 'col' : 'str', v, pos: start });
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
      toks.push({ t: 'id', v: m[0], pos: start });
      i += m[0].length;
    } else {
      const two = src.slice(i, i + 2);
      if (['==', '!=', '<>', '<=', '>=', '&&', '||'].includes(two)) { toks.push({ t: 'op', v: two, pos: start }); i += 2; continue; }
      if ('+-*/%<>=(),!'.includes(c)) { toks.push({ t: 'op', v: c, pos: start }); i++; continue; }
      throw new ExprError(`unexpected character ${JSON.stringify(c)} at ${i + 1}`, i);
    }
  }
  toks.push({ t: 'end', v: '', pos: src.length });
  return toks;
}

/**
 * Parses expression text into the unit's node list.
 * Columns: bare names (delay) or `back-quoted` ones (`US Gross`); literals:
 * 12, 1.5, 'text' or "text", true, false, null; operators + - * / %,
 * = == != <> < <= > >=, and/&&, or/||, not/!; functions len lower upper
 * contains prefix suffix is_null not_null, and casts int() float() string() bool().
 * @param {string} src
 * @param {string[]} columns the dataset's column names (for checks and messages)
 * @returns {{nodes: object[]}}
 */
export function parseExpr(src, columns) {
  const toks = tokenize(src);
  let k = 0;
  const nodes = [];
  const peek = () => toks[k];
  const take = () => toks[k++];
  const isOp = (v) => peek().t === 'op' && peek().v === v;
  const isWord = (v) => peek().t === 'id' && peek().v.toLowerCase() === v;
  const emit = (n) => { nodes.push(n); return nodes.length - 1; };
  const expect = (v) => {
    if (!isOp(v)) throw new ExprError(`expected "${v}" at ${peek().pos + 1}, found ${peek().t === 'end' ? 'the end' : JSON.stringify(peek().v)}`, peek().pos);
    take();
  };
  const column = (name, pos) => {
    if (!columns.includes(name)) {
      const near = columns.find((c) => c.toLowerCase() === name.toLowerCase());
      throw new ExprError(`no column ${JSON.stringify(name)} at ${pos + 1}${near ? `; did you mean ${JSON.stringify(near)}?` : ''} (columns: ${columns.join(', ')}${columns.some((c) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(c)) ? '; write names with spaces in `back quotes`' : ''})`, pos);
    }
    return emit({ op: 'col', column: name });
  };

  const primary = () => {
    const t = peek();
    if (t.t === 'num') {
      take();
      if (/^\d+$/.test(t.v)) {
        const n = Number(t.v);
        if (!Number.isSafeInteger(n)) throw new ExprError(`integer ${t.v} at ${t.pos + 1} is too large (at most ${Number.MAX_SAFE_INTEGER})`, t.pos);
        return emit({ op: 'lit', int: n });
      }
      return emit({ op: 'lit', float: Number(t.v) });
    }
    if (t.t === 'str') { take(); return emit({ op: 'lit', string: t.v }); }
    if (t.t === 'col') { take(); return column(t.v, t.pos); }
    if (t.t === 'op' && t.v === '(') { take(); const e = orExpr(); expect(')'); return e; }
    if (t.t === 'id') {
      take();
      const w = t.v.toLowerCase();
      if (w === 'true' || w === 'false') return emit({ op: 'lit', bool: w === 'true' });
      if (w === 'null') return emit({ op: 'lit' });
      if (isOp('(')) {
        const f = FUNCS[w];
        if (!f) throw new ExprError(`unknown function ${t.v}() at ${t.pos + 1} (functions: ${Object.keys(FUNCS).join(', ')})`, t.pos);
        take();
        const args = [];
        if (!isOp(')')) for (;;) { args.push(orExpr()); if (isOp(',')) { take(); continue; } break; }
        expect(')');
        if (args.length !== f[1]) throw new ExprError(`${t.v}() at ${t.pos + 1} takes ${f[1]} argument${f[1] > 1 ? 's' : ''}, found ${args.length}`, t.pos);
        return emit(f[2] ? { op: f[0], type: f[2], args } : { op: f[0], args });
      }
      return column(t.v, t.pos);
    }
    throw new ExprError(`expected a value, a column or "(" at ${t.pos + 1}, found ${t.t === 'end' ? 'the end' : JSON.stringify(t.v)}`, t.pos);
  };
  const unary = () => {
    if (isOp('-')) { take(); const a = unary(); return emit({ op: 'neg', args: [a] }); }
    if (isOp('+')) { take(); return unary(); }
    return primary();
  };
  const binary = (next, ops) => () => {
    let a = next();
    for (;;) {
      const t = peek();
      if (t.t !== 'op' || !(t.v in ops)) return a;
      take();
      const b = next();
      a = emit({ op: ops[t.v], args: [a, b] });
    }
  };
  const mul = binary(unary, { '*': 'mul', '/': 'div', '%': 'mod' });
  const add = binary(mul, { '+': 'add', '-': 'sub' });
  const cmp = () => {
    const a = add();
    const t = peek();
    if (t.t === 'op' && t.v in CMP) { take(); const b = add(); return emit({ op: CMP[t.v], args: [a, b] }); }
    return a;
  };
  const notExpr = () => {
    if (isWord('not') || isOp('!')) { take(); const a = notExpr(); return emit({ op: 'not', args: [a] }); }
    return cmp();
  };
  const logic = (next, word, sym, op) => () => {
    const first = next();
    const args = [first];
    while (isWord(word) || isOp(sym)) { take(); args.push(next()); }
    return args.length === 1 ? first : emit({ op, args });
  };
  const andExpr = logic(notExpr, 'and', '&&', 'and');
  const orExpr = logic(andExpr, 'or', '||', 'or');

  if (peek().t === 'end') throw new ExprError('the expression is empty: write one, e.g. delay * 2 + 1', 0);
  orExpr();
  if (peek().t !== 'end') throw new ExprError(`unexpected ${JSON.stringify(peek().v)} at ${peek().pos + 1}: expected an operator or the end`, peek().pos);
  return { nodes };
}

/** The builder's comparison operators: value → label and unit op. */
export const CONDITION_OPS = [
  ['eq', '='], ['ne', '≠'], ['lt', '<'], ['le', '≤'], ['gt', '>'], ['ge', '≥'],
  ['contains', 'contains'], ['prefix', 'starts with'], ['suffix', 'ends with'],
  ['is_null', 'is null'], ['not_null', 'is not null'],
];

/**
 * A literal node for `text` typed by the column's type.
 * @returns {object} {op:'lit', int|float|string|bool}
 */
export function literal(text, type, where) {
  const s = String(text).trim();
  if (type === 'string') return { op: 'lit', string: String(text) };
  if (type === 'bool') {
    if (/^(true|false)$/i.test(s)) return { op: 'lit', bool: /^true$/i.test(s) };
    throw new ExprError(`${where}: expected true or false, found ${JSON.stringify(text)}`);
  }
  if (s === '' || Number.isNaN(Number(s))) throw new ExprError(`${where}: expected a number, found ${JSON.stringify(text)}`);
  const n = Number(s);
  if (type === 'int' && Number.isSafeInteger(n) && /^[+-]?\d+$/.test(s)) return { op: 'lit', int: n };
  return { op: 'lit', float: n };
}

/**
 * The filter builder's rows as one predicate.
 * @param {'all'|'any'|'none'} match
 * @param {{column: string, op: string, value: string, not: boolean}[]} rows
 * @param {{name: string, type: string}[]} columns
 * @returns {{nodes: object[]}|null} null when there are no rows
 */
export function buildPredicate(match, rows, columns) {
  if (!rows.length) return null;
  const nodes = [];
  const emit = (n) => { nodes.push(n); return nodes.length - 1; };
  const parts = rows.map((r, i) => {
    const where = `condition ${i + 1}`;
    const col = columns.find((c) => c.name === r.column);
    if (!col) throw new ExprError(`${where}: pick a column (found ${JSON.stringify(r.column)})`);
    let a = emit({ op: 'col', column: col.name });
    let p;
    if (r.op === 'is_null' || r.op === 'not_null') p = emit({ op: r.op, args: [a] });
    else if (['contains', 'prefix', 'suffix'].includes(r.op)) {
      if (col.type !== 'string') a = emit({ op: 'cast', type: 'string', args: [a] });
      const b = emit({ op: 'lit', string: String(r.value) });
      p = emit({ op: r.op, args: [a, b] });
    } else {
      const b = emit(literal(r.value, col.type, `${where} (${col.name}, ${col.type})`));
      p = emit({ op: r.op, args: [a, b] });
    }
    return r.not ? emit({ op: 'not', args: [p] }) : p;
  });
  if (parts.length > 1 || match === 'none') {
    const j = parts.length > 1 ? emit({ op: match === 'all' ? 'and' : 'or', args: parts }) : parts[0];
    if (match === 'none') emit({ op: 'not', args: [j] });
  }
  return { nodes };
}
