import { createWebGPUBackend, DeviceError, formatBytes } from '../../index.js';
import { registeredKernels } from '../../kernels/index.js';
import { hasFlag, parseArgs, switches } from '../cli-args.js';

const USAGE = 'usage: step info [--json]\n  the WebGPU adapter, its limits and features (or why there is none); --json: as one JSON object';

/** `step info [--json]`: the WebGPU adapter, its limits and features (or why there is none). */
export async function info(args: string[]): Promise<number> {
  const parsed = parseArgs({ command: 'info', usage: USAGE, flags: switches(['--json']) }, args);
  if (parsed.help) { process.stdout.write(USAGE + '\n'); return 0; }
  const json = hasFlag(parsed, '--json');
  let backend;
  try {
    backend = await createWebGPUBackend();
  } catch (e) {
    if (!(e instanceof DeviceError)) throw e;
    if (json) process.stdout.write(JSON.stringify({ webgpu: null, error: e.message, fallback: 'cpu' }, null, 2) + '\n');
    else process.stdout.write(`device: cpu (no WebGPU: ${e.message})\n`);
    return 1;
  }
  const a = backend.adapter;
  const used = { features: [...backend.features].sort(), kernels: registeredKernels().length };
  if (json) {
    process.stdout.write(JSON.stringify({ webgpu: a, device: used }, null, 2) + '\n');
  } else {
    const lines = [
      `device: webgpu`,
      `adapter: ${a.description}`,
      `vendor: ${a.vendor}  architecture: ${a.architecture}  device: ${a.device}`,
      `subgroup size: ${a.subgroupMinSize ?? '?'}..${a.subgroupMaxSize ?? '?'}`,
      ...(a.lpVectorWidth ? [`llvmpipe vector width: ${a.lpVectorWidth.width ?? 'Mesa default'} (${a.lpVectorWidth.reason}; STEP_LP_VECTOR_WIDTH=default opts out)`] : []),
      `features used: ${used.features.join(', ') || 'none'}`,
      `adapter features: ${a.features.join(', ')}`,
      `limits:`,
      ...Object.entries(a.limits).map(([k, v]) => `  ${k.padEnd(44)} ${v}${/Size$/.test(k) && v >= 1024 ? ` (${formatBytes(v)})` : ''}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  backend.destroy();
  return 0;
}
