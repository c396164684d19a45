/**
 * Optimizer state checkpoints: one safetensors file holding every state tensor
 * (`param.<k>.<name>`, k = parameter index in group order; names m, v, momentum, master) and, in
 * the metadata, the step counts, group hyperparameters and loss-scaler state, so a run resumes
 * exactly. Loading checks everything against the optimizer before it writes anything.
 * A parameter split into row blocks (engine/row-blocks.ts) is one parameter of the file, its
 * blocks' states joined row after row, so a file does not depend on the device's buffer limit.
 */
import { groupRowBlocks } from '../row-blocks.js';
import type { LogicalTensor } from '../row-blocks.js';
import { SafetensorsError, openSafetensors, readRowBlocks, saveSafetensors } from '../safetensors.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { LossScalerState } from './loss-scaler.js';
import type { BaseHyper, Optimizer, OptimizerKind, ParamState, Precision } from './optimizer.js';

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

/** The optimizer's parameters as the file counts them: the row blocks of one tensor together. */
function logicalParams<H extends BaseHyper>(opt: Optimizer<H>): LogicalTensor<ParamState>[] {
  const params = groupRowBlocks(opt.paramStates(), (s) => s.param, (s) => s.param.label);
  for (const p of params) {
    if (p.parts.some((s) => s.group !== p.parts[0]!.group)) throw new SafetensorsError(`optimizer state: the row blocks of ${p.name} are in different parameter groups; put them in one`);
  }
  return params;
}

/** The logical shape: the blocks' rows summed. */
function logicalShape(p: LogicalTensor<ParamState>): number[] {
  const first = p.parts[0]!.param.shape;
  return p.parts.length === 1 ? [...first] : [p.parts.reduce((n, s) => n + s.param.shape[0]!, 0), ...first.slice(1)];
}

/** Every state tensor of the optimizer under its file name (the blocks of a split parameter, in row order). */
function stateTensors(params: readonly LogicalTensor<ParamState>[]): Map<string, Tensor[]> {
  const out = new Map<string, Tensor[]>();
  params.forEach((p, k) => {
    const first = p.parts[0]!;
    for (const name of first.tensors.keys()) out.set(`param.${k}.${name}`, p.parts.map((s) => s.tensors.get(name)!));
    if (first.master) out.set(`param.${k}.master`, p.parts.map((s) => s.master!));
  });
  return out;
}

export async function saveOptimizerState<H extends BaseHyper>(opt: Optimizer<H>, path: string): Promise<void> {
  const params = logicalParams(opt);
  const scaler = opt.lossScaler ? await opt.lossScaler.read() : null;
  const skipped = scaler?.skippedSteps ?? 0;
  const saved: SavedState = {
    kind: opt.kind,
    precision: opt.precision,
    maxGradNorm: opt.maxGradNorm,
    groups: opt.groups.map((g, i) => {
      const { params: _params, initialLr, ...hyper } = g;
      return { hyper: hyper as Record<string, unknown>, initialLr, size: groupSize(params, i) };
    }),
    params: params.map((p) => {
      const s = p.parts[0]!;
      return { label: p.name, shape: logicalShape(p), step: s.step - (skipped - s.skipBase) };
    }),
    lossScaler: scaler,
  };
  await saveSafetensors(path, stateTensors(params), { format: OPTIMIZER_STATE_FORMAT, version: VERSION, optimizer: opt.kind, state: JSON.stringify(saved) });
}

/** Parameters of group i as the file counts them. */
function groupSize(params: readonly LogicalTensor<ParamState>[], i: number): number {
  return params.filter((p) => p.parts[0]!.group === i).length;
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
    const params = logicalParams(opt);
    if (saved.params.length !== params.length) throw mismatch(`the state has ${saved.params.length} parameters, this optimizer ${params.length}`);
    const sizes = opt.groups.map((_, i) => groupSize(params, i)).join(', ');
    if (saved.groups.map((g) => g.size).join(', ') !== sizes) throw mismatch(`the state's group sizes [${saved.groups.map((g) => g.size).join(', ')}] differ from [${sizes}]`);
    params.forEach((p, k) => {
      const shape = saved.params[k]!.shape;
      if (formatShape(shape) !== formatShape(logicalShape(p))) throw mismatch(`parameter ${k} ("${saved.params[k]!.label}") is ${formatShape(shape)} in the state but ${p.parts.length === 1 ? p.parts[0]!.param.describe() : `${p.name} ${formatShape(logicalShape(p))} (${p.parts.length} row blocks)`} here`);
    });
    if ((saved.lossScaler === null) !== (opt.lossScaler === null)) {
      throw mismatch(saved.lossScaler ? 'the state has a loss scaler but this optimizer has none' : 'this optimizer has a loss scaler but the state has none');
    }
    const tensors = stateTensors(params);
    for (const [name, parts] of tensors) {
      const e = reader.entry(name);
      const shape = [parts.reduce((n, t) => n + t.shape[0]!, 0), ...parts[0]!.shape.slice(1)];
      const want = parts.length === 1 ? parts[0]!.shape : shape;
      if (e.dtype !== 'F32' || formatShape(e.shape) !== formatShape(want)) throw mismatch(`tensor "${name}" is ${e.dtype} ${formatShape(e.shape)} in the file but f32 ${formatShape(want)} here`);
    }
    // Everything matched: now overwrite.
    for (const [name, parts] of tensors) await readRowBlocks(reader, name, parts);
    opt.maxGradNorm = saved.maxGradNorm;
    opt.groups.forEach((g, i) => {
      const hyper = saved.groups[i]!.hyper;
      for (const key of Object.keys(opt.defaults)) if (key in hyper) (g as unknown as Record<string, unknown>)[key] = hyper[key];
      g.initialLr = saved.groups[i]!.initialLr;
    });
    if (opt.lossScaler && saved.lossScaler) opt.lossScaler.load(saved.lossScaler);
    params.forEach((p, k) => {
      for (const s of p.parts) {
        s.step = saved.params[k]!.step;
        s.skipBase = saved.lossScaler?.skippedSteps ?? 0;
      }
    });
  } finally {
    await reader.close();
  }
}
