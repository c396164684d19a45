// STEP by hand on a small LLaMA: train 2 layers, grow to 4 (Interpolation-Mean, new layers in the
// upper part), freeze the 2 old layers with LoRA adapters, train only the new layers and adapters,
// and compare the model-state bytes per category with the planner's prediction.
// (`nextStage` from 'step-webgpu/step' does the grow + freeze of a stage in one call.)
import { AdamW, backward, fromArray, initDevice, initLlama, makeConfig, memory, scope } from 'step-webgpu';
import { freezeLayersWithLora, growModel, planStages } from 'step-webgpu/step';

const device = await initDevice(); // WebGPU when an adapter exists, else the cpu backend (STEP_DEVICE overrides)
const target = makeConfig({ vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_attention_heads: 4, num_hidden_layers: 4, max_position_embeddings: 32 });
const rank = 4, split = [2, 2];
const plan = planStages({ config: target, split, rank, mode: 'engine', precision: 'fp32' });

// one fixed batch of token rows: inputs row[:-1], targets row[1:]
const B = 4, T = 16;
const row = (r) => Array.from({ length: T + 1 }, (_, t) => (r * 11 + t * 7 + (t % 3) * 5) % target.vocab_size);
const ids = fromArray(new Int32Array(Array.from({ length: B }, (_, r) => row(r).slice(0, T)).flat()), [B, T], { dtype: 'i32' });
const targets = fromArray(new Int32Array(Array.from({ length: B }, (_, r) => row(r).slice(1)).flat()), [B, T], { dtype: 'i32' });

const CATEGORIES = ['parameter', 'frozen', 'gradient', 'optimizer'];
const modelState = () => Object.fromEntries(CATEGORIES.map((c) => [c, memory().live[c]]));
const show = (bytes) => CATEGORIES.map((c) => `${c} ${bytes[c]}`).join(', ');

/** Trains `model` for `steps` AdamW steps; returns the losses and the model-state bytes after the first step. */
async function train(model, steps) {
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
  const losses = [];
  let afterFirst = null;
  for (let s = 0; s < steps; s++) {
    losses.push(await scope(async () => {
      const loss = model.loss(ids, targets);
      backward(loss);
      opt.step();
      return loss.item();
    }));
    afterFirst ??= modelState();
    opt.zeroGrad();
  }
  opt.dispose();
  return { losses, afterFirst };
}

// stage 1: the small model (split[0] layers), trained the ordinary way
let model = initLlama({ ...target, num_hidden_layers: split[0] }, { device, seed: 0 });
const one = await train(model, 10);
console.log(`stage 1: ${model.layers.length} layers, loss ${one.losses[0].toFixed(3)} -> ${one.losses.at(-1).toFixed(3)}`);
console.log(`  measured:  ${show(one.afterFirst)}`);
console.log(`  predicted: ${show(plan.stages[0].bytes)}`);

// stage 2: grow, freeze the old layers with LoRA, train the new layers and the adapters
for (const t of model.parameters()) { t.grad?.dispose(); t.grad = null; }
const grown = growModel(model, split[1], { operator: 'interpolation-mean', placement: 'upper' });
model = grown.model;
const frozen = grown.origin.flatMap((o, i) => (o === null ? [] : [i]));
freezeLayersWithLora(model, frozen, { rank, seed: 1 });
const two = await train(model, 10);
console.log(`stage 2: ${model.layers.length} layers (frozen with LoRA rank ${rank}: ${frozen.join(', ')}), loss ${two.losses[0].toFixed(3)} -> ${two.losses.at(-1).toFixed(3)}`);
console.log(`  measured:  ${show(two.afterFirst)}`);
console.log(`  predicted: ${show(plan.stages[1].bytes)}`);
console.log(`peak model state: stage ${plan.peakStage} of ${split.length}, ${(100 * plan.reduction).toFixed(1)}% below vanilla training of the ${target.num_hidden_layers}-layer target`);
