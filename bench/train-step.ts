/**
 * The training step the train and profile benches time: a LLaMA (a model preset or one of the
 * speed issue's configs) at a given batch shape and precision, AdamW with clipping, fixed token ids.
 */
import type { Backend } from '../index.js';
import { backward, fromArray, scope, setDevice } from '../index.js';
import { AdamW } from '../engine/optim/adam.js';
import type { Precision } from '../engine/optim/optimizer.js';
import type { LlamaConfig } from '../models/config.js';
import { presetConfig } from '../models/config-presets.js';
import { initLlama } from '../models/llama.js';

export interface Shape { preset: string; batch: number; seq: number; precision: Precision; large: boolean }

/** `preset[:BxT][:mixed]`; the default shape is 8 x 64 in fp32. */
export function parseShape(text: string): Shape {
  const [preset, ...rest] = text.split(':');
  const dims = rest.find((r) => /^\d+x\d+$/.test(r));
  const [batch, seq] = dims ? dims.split('x').map(Number) as [number, number] : [8, 64];
  return { preset: preset!, batch, seq, precision: rest.includes('mixed') ? 'mixed' : 'fp32', large: !!dims };
}

/** The configs of the speed issue's table, beside the model presets. */
const BENCH_CONFIGS: Record<string, () => LlamaConfig> = {
  h128: () => presetConfig('small', { num_hidden_layers: 4, max_position_embeddings: 256 }),
  h256: () => presetConfig('small', { hidden_size: 256, intermediate_size: 688, num_hidden_layers: 8, vocab_size: 4096, max_position_embeddings: 256 }),
};
/** A preset or bench config by name; `NAME@L` keeps L decoder layers (a big preset's step, profiled in minutes). */
export function configOf(name: string): LlamaConfig {
  const [base, layers] = name.split('@');
  const config = (BENCH_CONFIGS[base!] ?? (() => presetConfig(base!)))();
  return layers ? { ...config, num_hidden_layers: Number(layers) } : config;
}

/** The same token ids for every engine. */
export function batchOf(config: LlamaConfig, shape: Shape): { ids: number[]; targets: number[] } {
  const ids = Array.from({ length: shape.batch * shape.seq }, (_, i) => (i * 7919) % config.vocab_size);
  return { ids, targets: ids.map((t) => (t + 1) % config.vocab_size) };
}

export interface TrainStep {
  /** One step (forward, backward, clip, AdamW), awaited on the device. */
  run(): Promise<void>;
  dispose(): void;
}

export function makeTrainStep(device: Backend, shape: Shape): TrainStep {
  setDevice(device);
  const config = configOf(shape.preset);
  const { batch, seq, precision } = shape;
  const model = initLlama(config, { device, seed: 1, dtype: precision === 'mixed' ? 'f16' : 'f32' });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, maxGradNorm: 1, precision, lossScaling: precision === 'mixed' });
  const { ids, targets } = batchOf(config, shape);
  return {
    run: () => scope(async () => {
      const x = fromArray(ids, [batch, seq], { dtype: 'i32' });
      const y = fromArray(targets, [batch, seq], { dtype: 'i32' });
      const loss = model.loss(x, y);
      backward(opt.lossScaler ? opt.lossScaler.scaleLoss(loss) : loss);
      opt.step();
      opt.zeroGrad({ setToNone: true }); // as the trainer does: no gradient fills
      await device.sync();
    }),
    dispose: () => { opt.dispose(); model.dispose(); },
  };
}
