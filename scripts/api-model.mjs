/**
 * The public API as the TypeScript compiler sees it: for each entry point of package.json
 * "exports", every exported symbol with its kind, signatures, TSDoc summary and tags, the file that
 * declares it, and, for ops (functions from tensors to a tensor), whether they record gradients.
 * Used by scripts/api-docs.mjs (the reference in docs/api/) and by test/api/ (the checks).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Entry points from package.json "exports": subpath ('.', './engine', ...) -> source file. */
export function entryPoints(root = ROOT) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const out = [];
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const js = typeof target === 'string' ? target : target.default;
    if (!js.endsWith('.js')) continue; // ./package.json
    out.push({ subpath, importName: subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`, source: join(root, js.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts')) });
  }
  return out;
}

const KIND_ORDER = ['function', 'class', 'constant', 'interface', 'type'];

function kindOf(sym) {
  const f = sym.flags;
  if (f & ts.SymbolFlags.Function) return 'function';
  if (f & ts.SymbolFlags.Class) return 'class';
  if (f & ts.SymbolFlags.Interface) return 'interface';
  if (f & ts.SymbolFlags.TypeAlias) return 'type';
  if (f & ts.SymbolFlags.Variable) return 'constant';
  return 'other';
}

const oneLine = (s) => s.replace(/\s+/g, ' ').trim();

/** The TSDoc summary (text before the tags) and tags ({ name, text }) of a symbol. */
function docOf(sym, checker) {
  const summary = ts.displayPartsToString(sym.getDocumentationComment(checker)).trim();
  const tags = sym.getJsDocTags(checker).map((t) => ({ name: t.name, text: oneLine(ts.displayPartsToString(t.text ?? [])) }));
  return { summary, tags };
}

// binary ops take a number on either side (`mul(2, x)`): `number | Tensor` is a tensor operand too
const isTensorType = (text) => /^(readonly )?Tensor(\[\])?$/.test(text) || /^readonly Tensor\[\]$/.test(text) || /^(number \| Tensor|Tensor \| number)$/.test(text);

/** An op: a function whose first parameter is a Tensor (or tensors) and that returns a Tensor. */
function isOp(signatures, checker) {
  return signatures.some((sig) => {
    const first = sig.getParameters()[0];
    if (!first) return false;
    const decl = first.valueDeclaration;
    const paramType = checker.typeToString(checker.getTypeOfSymbolAtLocation(first, decl));
    const ret = checker.typeToString(sig.getReturnType());
    return isTensorType(paramType) && (ret === 'Tensor' || ret === 'Promise<Tensor>');
  });
}

function memberList(type, checker, isStatic) {
  const out = [];
  for (const p of checker.getPropertiesOfType(type)) {
    const decl = p.valueDeclaration ?? p.declarations?.[0];
    if (!decl || p.name === 'prototype' || p.name.startsWith('#')) continue;
    const mods = ts.getCombinedModifierFlags(decl);
    if (mods & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
    const t = checker.getTypeOfSymbolAtLocation(p, decl);
    const sigs = t.getCallSignatures();
    const prefix = isStatic ? 'static ' : '';
    const isAccessor = ts.isGetAccessorDeclaration(decl) || ts.isSetAccessorDeclaration(decl);
    const text = sigs.length && !isAccessor && !ts.isPropertyDeclaration(decl)
      ? sigs.map((s) => `${prefix}${p.name}${checker.signatureToString(s)}`)
      : [`${prefix}${(mods & ts.ModifierFlags.Readonly) || (isAccessor && !p.declarations.some(ts.isSetAccessorDeclaration)) ? 'readonly ' : ''}${p.name}: ${checker.typeToString(t)}`];
    out.push({ name: p.name, signatures: text, ...docOf(p, checker) });
  }
  return out;
}

/** Reads `export const DIFFERENTIABLE_OPS = [...]` from autograd/index.ts. */
function differentiableOps(program, root) {
  const sf = program.getSourceFile(join(root, 'autograd/index.ts'));
  let names = null;
  sf?.forEachChild((n) => {
    if (!ts.isVariableStatement(n)) return;
    for (const d of n.declarationList.declarations) {
      if (d.name.getText() !== 'DIFFERENTIABLE_OPS') continue;
      let init = d.initializer;
      if (init && ts.isAsExpression(init)) init = init.expression;
      if (init && ts.isArrayLiteralExpression(init)) names = init.elements.map((e) => e.text);
    }
  });
  if (!names) throw new Error('api-model: DIFFERENTIABLE_OPS not found in autograd/index.ts');
  return new Set(names);
}

/**
 * The model: { entries: [{ subpath, importName, summary, symbols: [...] }], differentiable: Set }.
 * A symbol: { name, kind, file, signatures, summary, tags, members, isOp, grad } where grad is
 * 'records' | 'no' | 'undeclared' for ops and null otherwise, and gradNote says why not.
 */
export function apiModel(root = ROOT) {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
  const entries = entryPoints(root);
  const program = ts.createProgram(entries.map((e) => e.source), { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const differentiable = differentiableOps(program, root);
  const result = [];
  for (const entry of entries) {
    const sf = program.getSourceFile(entry.source);
    if (!sf) throw new Error(`api-model: ${entry.source} (entry point ${entry.subpath}) not found`);
    const moduleSym = checker.getSymbolAtLocation(sf);
    const firstStatement = sf.statements[0];
    const summary = firstStatement ? (ts.getLeadingCommentRanges(sf.text, firstStatement.getFullStart()) ?? [])
      .map((r) => sf.text.slice(r.pos, r.end)).filter((c) => c.startsWith('/**'))
      .map((c) => c.replace(/^\/\*\*|\*\/$/g, '').split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n').trim())[0] ?? '' : '';
    const symbols = [];
    for (const exported of checker.getExportsOfModule(moduleSym)) {
      const sym = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const decl = sym.valueDeclaration ?? sym.declarations?.[0];
      if (!decl) continue;
      const file = relative(root, decl.getSourceFile().fileName);
      const kind = kindOf(sym);
      const { summary: doc, tags } = docOf(sym, checker);
      let signatures = [];
      let members = [];
      let callSigs = [];
      if (kind === 'function' || kind === 'constant') {
        const type = checker.getTypeOfSymbolAtLocation(sym, decl);
        callSigs = type.getCallSignatures();
        signatures = callSigs.length
          ? callSigs.map((s) => `${exported.name}${checker.signatureToString(s)}`)
          : [`const ${exported.name}: ${checker.typeToString(type, undefined, ts.TypeFormatFlags.NoTruncation)}`];
      } else if (kind === 'class') {
        const ctorType = checker.getTypeOfSymbolAtLocation(sym, decl);
        signatures = ctorType.getConstructSignatures().map((s) => `new ${exported.name}${checker.signatureToString(s)}`);
        members = [...memberList(ctorType, checker, true), ...memberList(checker.getDeclaredTypeOfSymbol(sym), checker, false)];
      } else {
        signatures = [decl.getText().replace(/^export /, '')];
      }
      const op = callSigs.length > 0 && isOp(callSigs, checker);
      let grad = null, gradNote = '';
      if (op) {
        const nograd = tags.find((t) => t.name === 'nograd');
        if (entry.subpath === './kernels' && file.startsWith('kernels/')) { grad = 'no'; gradNote = 'raw kernel'; }
        else if (differentiable.has(exported.name) && file.startsWith('autograd/')) grad = 'records';
        else if (nograd) { grad = 'no'; gradNote = nograd.text; }
        else grad = 'undeclared';
      }
      symbols.push({ name: exported.name, kind, file, signatures, summary: doc, tags, members, isOp: op, grad, gradNote, runtime: kind !== 'interface' && kind !== 'type' });
    }
    symbols.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || a.name.localeCompare(b.name));
    result.push({ ...entry, summary, symbols });
  }
  return { entries: result, differentiable };
}
