import { initDevice, memory, randn, scope, zeros } from 'step-webgpu';

const show = (r) => JSON.stringify(Object.fromEntries(Object.entries(r).filter(([, v]) => v > 0)));
await initDevice(); // WebGPU when an adapter exists, else the cpu backend (STEP_DEVICE overrides)
const w = randn([256, 256], { category: 'parameter', label: 'w' }); // 256*256*4 = 262144 bytes
await scope(async () => {
  zeros([64, 256], { category: 'activation', label: 'h' }); // 65536 bytes, freed by the scope
  zeros([256, 256], { category: 'gradient', label: 'dw' }); // 262144 bytes, freed by the scope
  console.log('inside the scope:', show(memory().live));
});
console.log('after the scope:', show(memory().live));
console.log('peak of tensor bytes:', memory().peakTensors.total, show(memory().peakTensors.breakdown));
w.dispose();
console.log('after dispose:', memory().live.parameter, 'parameter bytes');
