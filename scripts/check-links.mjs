#!/usr/bin/env node
/**
 * Checks every relative link in README.md and docs/**\/*.md: the file must exist and an anchor
 * (#heading) must name a heading of the target page (GitHub's anchors). Web links are not fetched.
 *   node scripts/check-links.mjs   prints each broken link as FILE:LINE: LINK (why); exit 1 if any
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading) {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** Lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(text) {
  const out = [];
  let fence = null;
  text.split('\n').forEach((line, i) => {
    const m = /^\s*(```|~~~)/.exec(line);
    if (m) { fence = fence === null ? m[1] : fence === m[1] ? null : fence; return; }
    if (fence === null) out.push({ line, n: i + 1 });
  });
  return out;
}

/** The anchors of a markdown page: its headings' slugs, repeats suffixed -1, -2, ... as GitHub does. */
export function anchorsOf(text) {
  const seen = new Map();
  const anchors = new Set();
  for (const { line } of proseLines(text)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1].replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1'));
    const k = seen.get(base) ?? 0;
    seen.set(base, k + 1);
    anchors.add(k === 0 ? base : `${base}-${k}`);
  }
  return anchors;
}

/** The markdown files checked: README.md and every .md under docs/. */
export function markdownFiles(root = ROOT) {
  const files = [join(root, 'README.md')];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const f of readdirSync(dir).sort()) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.md')) files.push(p);
    }
  };
  walk(join(root, 'docs'));
  return files;
}

/** Every broken relative link: { file, line, link, why } (file relative to root). */
export function brokenLinks(root = ROOT) {
  const broken = [];
  const anchorCache = new Map();
  const anchors = (path) => {
    if (!anchorCache.has(path)) anchorCache.set(path, anchorsOf(readFileSync(path, 'utf8')));
    return anchorCache.get(path);
  };
  for (const file of markdownFiles(root)) {
    for (const { line, n } of proseLines(readFileSync(file, 'utf8'))) {
      // inline code may show link-like text: drop it first
      const prose = line.replace(/`[^`]*`/g, '');
      for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const link = m[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // http:, https:, mailto:
        const [pathPart, anchor] = link.split('#', 2);
        const target = pathPart ? join(dirname(file), decodeURIComponent(pathPart)) : file;
        const where = { file: relative(root, file), line: n, link };
        if (!existsSync(target)) { broken.push({ ...where, why: `${relative(root, target)} does not exist` }); continue; }
        if (anchor !== undefined && anchor !== '') {
          if (!target.endsWith('.md')) { broken.push({ ...where, why: 'an anchor into a file that is not markdown' }); continue; }
          if (!anchors(target).has(anchor)) broken.push({ ...where, why: `no heading with anchor #${anchor} in ${relative(root, target)}` });
        }
      }
    }
  }
  return broken;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const broken = brokenLinks();
  for (const b of broken) console.error(`${b.file}:${b.line}: ${b.link} (${b.why})`);
  if (broken.length) process.exit(1);
  console.log(`links ok in ${markdownFiles().length} markdown files`);
}
