import { hasFlag, parseArgs, switches } from '../cli-args.js';
import { countParameters } from '../../models/config-params.js';
import { PRESET_NAMES, presetConfig, presetDescription } from '../../models/config-presets.js';

const USAGE = 'usage: step presets [--json]';

/** `step presets [--json]`: the model presets with their parameter counts. */
export async function presets(args: string[]): Promise<number> {
  const a = parseArgs({ command: 'presets', usage: USAGE, flags: switches(['--json']) }, args);
  if (a.help) { process.stdout.write(USAGE + '\n'); return 0; }
  const json = hasFlag(a, '--json');
  const rows = PRESET_NAMES.map((name) => {
    const config = presetConfig(name);
    return { name, description: presetDescription(name), config, parameters: countParameters(config) };
  });
  if (json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return 0;
  }
  const n = (x: number): string => x.toLocaleString('en-US');
  const header = ['preset', 'hidden', 'ffn', 'heads', 'kv', 'layers', 'vocab', 'ctx', 'embeddings', 'per layer', 'all layers', 'final norm', 'head', 'total'];
  const table = rows.map(({ name, config: c, parameters: p }) => [
    name, String(c.hidden_size), String(c.intermediate_size), String(c.num_attention_heads), String(c.num_key_value_heads),
    String(c.num_hidden_layers), String(c.vocab_size), String(c.max_position_embeddings),
    n(p.embeddings), n(p.perLayer.total), n(p.layers), n(p.finalNorm), n(p.head), n(p.total),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  const out = [line(header), ...table.map(line), '',
    'per layer = attention q,k,v,o + MLP gate,up,down + 2 RMSNorm weights; head = 0 when tied; all untied here.',
    ...rows.map((r) => `${r.name.padEnd(6)} ${r.description}`)];
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
