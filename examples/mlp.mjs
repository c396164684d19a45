// A two-layer MLP fitted with AdamW: one layer is a `Linear` (with bias), the other is built by
// hand from `parameter()` tensors. Every op used here records gradients; `backward` fills `.grad`.
import { AdamW, Generator, Linear, add, backward, fromArray, initDevice, matmul, mean, memory, parameter, randn, scope, silu, square, sub, zeros } from 'step-webgpu';

const device = await initDevice(); // WebGPU when an adapter exists, else the cpu backend (STEP_DEVICE overrides)
const g = new Generator(3);

// data: y = sin(x0) + x1^2 / 2 at 64 points
const n = 64, xs = [], ys = [];
for (let i = 0; i < n; i++) {
  const a = Math.sin(i * 12.9898) * 2, b = Math.cos(i * 78.233) * 2;
  xs.push(a, b);
  ys.push(Math.sin(a) + (b * b) / 2);
}
const x = fromArray(xs, [n, 2]), y = fromArray(ys, [n, 1]);

const hidden = Linear.create(2, 32, { name: 'hidden', generator: g }); // weight [32, 2], bias [32]
const w = parameter(randn([1, 32], { std: 0.2, generator: g, label: 'out.weight' }));
const b = parameter(zeros([1], { label: 'out.bias' }));
const params = [...hidden.parameters(), w, b];
const opt = new AdamW(params, { lr: 0.03, weightDecay: 0 });

const forward = (input) => add(matmul(silu(hidden.forward(input)), w, { transB: true }), b);
let first = 0, last = 0;
for (let step = 0; step < 200; step++) {
  last = await scope(async () => {
    const loss = mean(square(sub(forward(x), y)));
    backward(loss);
    opt.step();
    opt.zeroGrad();
    return loss.item();
  });
  if (step === 0) first = last;
  if (step % 50 === 0) console.log(`step ${step}: loss ${last.toFixed(4)}`);
}
console.log(`loss ${first.toFixed(4)} -> ${last.toFixed(4)} after 200 steps on ${device.name}`);
const live = memory().live;
console.log(`parameters: ${params.reduce((s, p) => s + p.size, 0)} values, ${live.parameter} bytes; gradients ${live.gradient} bytes; AdamW state ${live.optimizer} bytes`);
