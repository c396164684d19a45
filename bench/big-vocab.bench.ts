/**
 * A vocabulary larger than one storage binding: a one-layer LLaMA with a 32000 x 2048 f32
 * embedding (262 MB, beyond llvmpipe's 128 MiB maxStorageBufferBindingSize), tied head, created
 * and trained for one AdamW step on WebGPU. The embedding, its gradient and Adam moments live as
 * row blocks (engine/row-blocks.ts). Prints the blocks, the loss, the time and the peak memory.
 * Run: `npm run build && node dist/bench/big-vocab.bench.js` (about 1.3 GB of host memory on llvmpipe;
 * STEP_BENCH_UNTIED=1 for an untied head, about 2.4 GB).
 */
import { AdamW, backward, createWebGPUBackend, formatBytes, fromArray, scope, setDevice } from '../index.js';
import { initLlama } from '../models/llama.js';

const B = 1, T = 64;
const device = await createWebGPUBackend();
setDevice(device);
const config = {
  vocab_size: 32000, hidden_size: 2048, intermediate_size: 256, num_hidden_layers: 1, num_attention_heads: 16,
  rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: process.env.STEP_BENCH_UNTIED !== '1',
};
console.log(`device: ${device.description}; largest buffer ${formatBytes(device.maxBufferBytes)}`);
let t0 = performance.now();
const model = initLlama(config, { device, seed: 1 });
await device.sync();
console.log(`created in ${((performance.now() - t0) / 1000).toFixed(1)} s: embedding as ${model.embedBlocks.length} row blocks of ${model.embedBlocks.map((b) => b.shape[0]).join(', ')} rows (${config.tie_word_embeddings ? 'tied head' : `head ${model.headBlocks!.length} blocks`})`);
const opt = new AdamW(model.parameters(), { lr: 1e-3, maxGradNorm: 1 });
const ids = Array.from({ length: B * T }, (_, i) => (i * 7919) % config.vocab_size);
const targets = ids.map((t) => (t * 31 + 7) % config.vocab_size);
for (let step = 1; step <= 2; step++) {
  t0 = performance.now();
  const loss = await scope(async () => {
    const l = model.loss(fromArray(ids, [B, T], { dtype: 'i32' }), fromArray(targets, [B, T], { dtype: 'i32' }));
    backward(l);
    opt.step();
    opt.zeroGrad();
    return l.item();
  });
  console.log(`step ${step}: loss ${loss.toFixed(4)} (ln V = ${Math.log(config.vocab_size).toFixed(4)}), ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const m = device.memory();
const cats = Object.entries(m.peak.breakdown).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${formatBytes(v)}`).join(', ');
console.log(`tracker peak ${formatBytes(m.peak.total)} (${cats}); process peak RSS ${formatBytes(Number(/VmHWM:\s+(\d+)/.exec(await (await import('node:fs/promises')).readFile('/proc/self/status', 'utf8'))![1]) * 1024)}`);
opt.dispose();
model.dispose();
