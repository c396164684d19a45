// Exits 0 and prints the adapter when WebGPU (Dawn) finds one; exits 1 otherwise.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const adapter = await create([]).requestAdapter().catch(() => null);
if (!adapter) {
  console.error('probe-webgpu: no WebGPU adapter');
  process.exit(1);
}
console.log(`probe-webgpu: ${adapter.info.description || adapter.info.device || adapter.info.vendor}`);
process.exit(0);
