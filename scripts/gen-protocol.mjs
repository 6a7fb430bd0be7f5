#!/usr/bin/env node
// Generates src/ipc/protocol-table.generated.ts from native/common/protocol.def, the one
// definition of the wire protocol (the C++ codec includes the .def itself as an X-macro file).
//   node scripts/gen-protocol.mjs           (npm run gen:protocol) writes the file
//   node scripts/gen-protocol.mjs --check   exits 1 when the committed file is stale
// Plain Node, no dependencies. The .def grammar is documented at its top; anything else on a
// line is an error here, so the C++ and TypeScript sides cannot read it differently.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DEF = 'native/common/protocol.def';
const OUT = 'src/ipc/protocol-table.generated.ts';

const CONST_TYPES = new Set(['u8', 'u16', 'u32', 'u64', 'size']);
const WIRE_TYPES = new Set(['u8', 'u16', 'u32', 'u64', 'bytes', 'str']);
const IDENT = /^[A-Za-z_]\w*$/;
const FORMS = {
  SB_CONST: 3, SB_CALL: 5, SB_RECORD: 1, SB_END: 1, SB_VIEW: 2,
  SB_FIELD: 2, SB_FIELD_MAX: 3, SB_FIELD_IS: 3, SB_FIELD_INIT: 3, SB_ARRAY: 2,
};

/** Parses the .def text into { consts, calls, records }; throws with the line number on anything else. */
function parseDef(text) {
  const consts = new Map(); // name -> { type, expr, value }
  const calls = [];
  const records = new Map(); // name -> [{ name, type, rule? }]
  let open = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\/\/.*$/, '').trim();
    if (line === '') return;
    const fail = (why) => { throw new Error(`${DEF}:${i + 1}: ${why}: ${raw.trim()}`); };
    const m = /^(SB_[A-Z_]+)\((.*)\)$/.exec(line);
    if (!m || !(m[1] in FORMS)) fail('not one of the SB_* forms');
    const [, form, argText] = m;
    const args = argText.split(',').map((a) => a.trim());
    if (args.length !== FORMS[form] || args.some((a) => a === '')) fail(`${form} takes ${FORMS[form]} arguments`);
    const value = (expr) => {
      // Integer expressions over literals and earlier constants, the same in C++ and TypeScript.
      if (!/^[\w\s+\-*()]+$/.test(expr) || /\b\d+[uUlL]/.test(expr)) fail(`value "${expr}" is not a plain integer expression`);
      const js = expr.replace(/\b[A-Za-z_]\w*/g, (id) => {
        if (!consts.has(id)) fail(`${id} is not a constant defined above`);
        return String(consts.get(id).value);
      });
      const v = Function(`"use strict"; return (${js});`)();
      if (!Number.isSafeInteger(v) || v < 0) fail(`value "${expr}" is not a non-negative integer`);
      return v;
    };
    const field = (f) => {
      if (open === null) fail(`${form} outside SB_RECORD`);
      if (!IDENT.test(f.name) || open.fields.some((x) => x.name === f.name)) fail(`bad or repeated field name ${f.name}`);
      open.fields.push(f);
    };
    switch (form) {
      case 'SB_CONST': {
        const [type, name, expr] = args;
        if (!CONST_TYPES.has(type) || !IDENT.test(name) || consts.has(name)) fail('bad constant');
        consts.set(name, { type, expr, value: value(expr) });
        break;
      }
      case 'SB_CALL': {
        const [code, name, id, request, reply] = args;
        if (![name, id, request, reply].every((x) => IDENT.test(x))) fail('bad call');
        const c = value(code);
        if (c < 1 || c > 0xff || calls.some((x) => x.code === c || x.name === name)) fail('call code or name repeated or out of range');
        calls.push({ code: c, name, id, request, reply });
        break;
      }
      case 'SB_RECORD':
        if (open !== null) fail(`SB_RECORD inside ${open.name}`);
        if (!IDENT.test(args[0]) || records.has(args[0])) fail('bad or repeated record name');
        open = { name: args[0], fields: [] };
        break;
      case 'SB_END':
        if (open === null || open.name !== args[0]) fail('SB_END does not close the open record');
        records.set(open.name, open.fields);
        open = null;
        break;
      case 'SB_VIEW':
        if (!records.has(args[1])) fail(`${args[1]} is not a record defined above`);
        break;
      case 'SB_ARRAY':
        if (!records.has(args[0])) fail(`${args[0]} is not a record defined above`);
        field({ name: args[1], type: { array: args[0] } });
        break;
      default: {
        const [type, name, expr] = args;
        if (!WIRE_TYPES.has(type)) fail(`unknown wire type ${type}`);
        const f = { name, type };
        if (form === 'SB_FIELD_MAX') {
          if (type !== 'bytes' && type !== 'str') fail('SB_FIELD_MAX is for bytes and str');
          f.rule = { max: expr };
        }
        if (form === 'SB_FIELD_IS') {
          if (type === 'bytes' || type === 'str' || type === 'u64') fail('SB_FIELD_IS is for u8/u16/u32');
          f.rule = { is: expr };
        }
        if (f.rule) value(expr);
        field(f);
      }
    }
  });
  if (open !== null) throw new Error(`${DEF}: record ${open.name} has no SB_END`);
  for (const c of calls)
    for (const r of [c.request, c.reply]) if (!records.has(r)) throw new Error(`${DEF}: call ${c.name} names no record ${r}`);
  return { consts, calls, records };
}

const UPPER = (name) => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
const TS_TYPE = { u8: 'number', u16: 'number', u32: 'number', u64: 'bigint', bytes: 'Buffer', str: 'string' };

/** The TypeScript module for a parsed .def. */
function render({ consts, calls, records }) {
  const out = [];
  out.push(`// GENERATED from ${DEF} by scripts/gen-protocol.mjs — do not edit; run \`npm run gen:protocol\`.`);
  out.push('// The call table, field lists and limits of the wire protocol (docs/protocol.md); src/ipc/protocol.ts');
  out.push('// is the codec that walks them. test/unit/codec.test.ts fails when this file is stale.', '');
  for (const [name, c] of consts) out.push(`export const ${name} = ${c.expr};`);
  out.push('');
  out.push("export type WireType = 'u8' | 'u16' | 'u32' | 'u64' | 'bytes' | 'str';");
  out.push('/** SB_FIELD_MAX: a bytes/str of at most `max` bytes; SB_FIELD_IS: an integer that must equal `is`. */');
  out.push('export type FieldRule = { readonly max: number } | { readonly is: number };');
  out.push('export type FieldType = WireType | { readonly array: Struct };');
  out.push('export type Field = readonly [name: string, type: FieldType, rule?: FieldRule];');
  out.push('export type Struct = ReadonlyArray<Field>;', '');
  out.push('// Records in wire order (SB_RECORD), nested records first.');
  for (const [name, fields] of records) {
    const items = fields.map((f) => {
      const type = typeof f.type === 'object' ? `{ array: ${UPPER(f.type.array)} }` : `'${f.type}'`;
      const rule = f.rule ? (f.rule.max !== undefined ? `, { max: ${f.rule.max} }` : `, { is: ${f.rule.is} }`) : '';
      return `  ['${f.name}', ${type}${rule}],`;
    });
    out.push(`export const ${UPPER(name)}: Struct = [${items.length ? '\n' + items.join('\n') + '\n' : ''}];`);
  }
  out.push('');
  out.push('// The call table (SB_CALL).');
  out.push('export const CALLS = {');
  for (const c of calls)
    out.push(`  ${c.name}: { code: 0x${c.code.toString(16).padStart(2, '0')}, request: ${UPPER(c.request)}, reply: ${UPPER(c.reply)} },`);
  out.push('} as const satisfies Record<string, { code: number; request: Struct; reply: Struct }>;', '');
  out.push('/** The decoded shape of every record (u64 → bigint, bytes → Buffer, str → string, array → array). */');
  out.push('export interface Records {');
  for (const [name, fields] of records) {
    const body = fields.map((f) => `${f.name}: ${typeof f.type === 'object' ? `Records['${f.type.array}'][]` : TS_TYPE[f.type]}`);
    out.push(`  ${name}: ${body.length ? `{ ${body.join('; ')} }` : 'Record<string, never>'};`);
  }
  out.push('}');
  const bodies = (kind, empty) => {
    out.push(`export interface ${kind === 'request' ? 'Request' : 'Reply'}Bodies {`);
    for (const c of calls) {
      const rec = c[kind];
      out.push(`  ${c.name}: ${records.get(rec).length ? `Records['${rec}']` : empty};`);
    }
    out.push('}');
  };
  bodies('request', 'Record<string, never>');
  // A reply with no fields is Record<never, never>: ({ rv: 0 } & Record<string, never>) would forbid rv.
  bodies('reply', 'Record<never, never>');
  return out.join('\n') + '\n';
}

function main() {
  const text = readFileSync(join(root, DEF), 'utf8');
  const ts = render(parseDef(text));
  const target = join(root, OUT);
  if (process.argv.includes('--check')) {
    let have = '';
    try { have = readFileSync(target, 'utf8'); } catch { /* missing counts as stale */ }
    if (have !== ts) {
      console.error(`${OUT} is stale: it does not match ${DEF}. Run \`npm run gen:protocol\` and commit the result.`);
      process.exit(1);
    }
    console.log(`${OUT} is up to date`);
    return;
  }
  writeFileSync(target, ts);
  console.log(`wrote ${OUT} from ${DEF}`);
}

try {
  main();
} catch (e) {
  console.error(String(e instanceof Error ? e.message : e));
  process.exit(2);
}
