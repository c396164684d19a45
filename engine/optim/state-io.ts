/**
 * Optimizer state checkpoints: one safetensors file holding every state tensor
 * (`param.<k>.<name>`, k = parameter index in group order; names m, v, momentum, master) and, in
 * the metadata, the step counts, group hyperparameters and loss-scaler state, so a run resumes
 * exactly. Loading checks everything against the optimizer before it writes anything.
 */
import { SafetensorsError, openSafetensors, saveSafetensors } from '../safetensors.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { LossScalerState } from './loss-scaler.js';
import type { BaseHyper, Optimizer, OptimizerKind, Precision } from './optimizer.js';

export const OPTIMIZER_STATE_FORMAT = 'step-webgpu/optimizer-state';
const VERSION = '1';

interface SavedState {
  kind: OptimizerKind;
  precision: Precision;
  maxGradNorm: number;
  groups: { hyper: Record<string, unknown>; initialLr: number; size: number }[];
  /** `step` counts applied steps (steps the loss scaler skipped are not counted). */
  params: { label: string; shape: number[]; step: number }[];
  lossScaler: LossScalerState | null;
}

/** Every state tensor of the optimizer under its file name. */
function stateTensors<H extends BaseHyper>(opt: Optimizer<H>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  opt.paramStates().forEach((s, k) => {
    for (const [name, t] of s.tensors) out.set(`param.${k}.${name}`, t);
    if (s.master) out.set(`param.${k}.master`, s.master);
  });
  return out;
}

export async function saveOptimizerState<H extends BaseHyper>(opt: Optimizer<H>, path: string): Promise<void> {
  const states = opt.paramStates();
  const scaler = opt.lossScaler ? await opt.lossScaler.read() : null;
  const skipped = scaler?.skippedSteps ?? 0;
  const saved: SavedState = {
    kind: opt.kind,
    precision: opt.precision,
    maxGradNorm: opt.maxGradNorm,
    groups: opt.groups.map((g) => {
      const { params, initialLr, ...hyper } = g;
      return { hyper: hyper as Record<string, unknown>, initialLr, size: params.length };
    }),
    params: states.map((s) => ({ label: s.param.label, shape: [...s.param.shape], step: s.step - (skipped - s.skipBase) })),
    lossScaler: scaler,
  };
  await saveSafetensors(path, stateTensors(opt), { format: OPTIMIZER_STATE_FORMAT, version: VERSION, optimizer: opt.kind, state: JSON.stringify(saved) });
}

function parseSaved(meta: Record<string, string>, path: string): SavedState {
  if (meta.format !== OPTIMIZER_STATE_FORMAT) {
    throw new SafetensorsError(`${path}: not an optimizer state file (metadata "format" is ${JSON.stringify(meta.format)}, expected "${OPTIMIZER_STATE_FORMAT}")`);
  }
  if (meta.version !== VERSION) throw new SafetensorsError(`${path}: optimizer state version ${JSON.stringify(meta.version)} is not supported (this library reads ${VERSION})`);
  try {
    const s = JSON.parse(meta.state ?? '') as SavedState;
    if (!Array.isArray(s.params) || !Array.isArray(s.groups)) throw new Error('params or groups missing');
    return s;
  } catch (e) {
    throw new SafetensorsError(`${path}: metadata "state" is not a valid optimizer state (${(e as Error).message}); the file is corrupt`);
  }
}

export async function loadOptimizerState<H extends BaseHyper>(opt: Optimizer<H>, path: string): Promise<void> {
  const reader = await openSafetensors(path);
  try {
    const saved = parseSaved(reader.metadata, path);
    const mismatch = (what: string) => new SafetensorsError(`${path}: ${what}; load the state into an optimizer built like the one that saved it`);
    if (saved.kind !== opt.kind) throw mismatch(`the state is of a ${saved.kind} optimizer, this one is ${opt.kind}`);
    if (saved.precision !== opt.precision) throw mismatch(`the state is '${saved.precision}' precision, this optimizer is '${opt.precision}'`);
    const states = opt.paramStates();
    if (saved.params.length !== states.length) throw mismatch(`the state has ${saved.params.length} parameters, this optimizer ${states.length}`);
    const sizes = opt.groups.map((g) => g.params.length).join(', ');
    if (saved.groups.map((g) => g.size).join(', ') !== sizes) throw mismatch(`the state's group sizes [${saved.groups.map((g) => g.size).join(', ')}] differ from [${sizes}]`);
    states.forEach((s, k) => {
      const shape = saved.params[k]!.shape;
      if (formatShape(shape) !== formatShape(s.param.shape)) throw mismatch(`parameter ${k} ("${saved.params[k]!.label}") is ${formatShape(shape)} in the state but ${s.param.describe()} here`);
    });
    if ((saved.lossScaler === null) !== (opt.lossScaler === null)) {
      throw mismatch(saved.lossScaler ? 'the state has a loss scaler but this optimizer has none' : 'this optimizer has a loss scaler but the state has none');
    }
    const tensors = stateTensors(opt);
    for (const [name, t] of tensors) {
      const e = reader.entry(name);
      if (e.dtype !== 'F32' || formatShape(e.shape) !== formatShape(t.shape)) throw mismatch(`tensor "${name}" is ${e.dtype} ${formatShape(e.shape)} in the file but f32 ${formatShape(t.shape)} here`);
    }
    // Everything matched: now overwrite.
    for (const [name, t] of tensors) {
      const values = await reader.values(name);
      t.backend.write(t.storage, values);
    }
    opt.maxGradNorm = saved.maxGradNorm;
    opt.groups.forEach((g, i) => {
      const hyper = saved.groups[i]!.hyper;
      for (const key of Object.keys(opt.defaults)) if (key in hyper) (g as unknown as Record<string, unknown>)[key] = hyper[key];
      g.initialLr = saved.groups[i]!.initialLr;
    });
    if (opt.lossScaler && saved.lossScaler) opt.lossScaler.load(saved.lossScaler);
    states.forEach((s, k) => {
      s.step = saved.params[k]!.step;
      s.skipBase = saved.lossScaler?.skippedSteps ?? 0;
    });
  } finally {
    await reader.close();
  }
}
