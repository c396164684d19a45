/**
 * `step-webgpu/engine`: tensors, dtypes, shapes, devices, memory tracking, scopes, random numbers,
 * safetensors I/O, optimizers and LR schedules. Works on its own: the kernels the engine runs
 * (creation, copies, optimizer updates) register themselves (see builtin-kernels.ts).
 * The list is curated: a test pins it (test/api/exports.json).
 */
import './builtin-kernels.js';

export type { Backend, BackendName, BackendStats, Storage } from './backend.js';
export { CpuBackend } from './cpu/backend.js';
export type { CpuView } from './cpu/backend.js';
export { UNIFORM_ARENA_BYTES, WebGPUBackend } from './webgpu/backend.js';
export type { AdapterSummary, DispatchSpec, WebGPUBackendOptions } from './webgpu/backend.js';
export type { WaitMode } from './webgpu/device-wait.js';
export type { ScratchTexture } from './webgpu/texture-pool.js';
export type { VectorWidthChoice, VectorWidthDecision } from './webgpu/vector-width.js';
export { PROFILE_DAWN_FLAGS } from './webgpu/profiler.js';
export type { KernelTime, ProfileReport } from './webgpu/profiler.js';
export { createWebGPUBackend, getDevice, initDevice, setDevice, LAVAPIPE_HINT } from './device.js';
export type { DeviceChoice } from './device.js';
export { DTYPES, bytesPerElement, f16BitsToF32, f32ToF16Bits, isFloat, roundToF16 } from './dtype.js';
export type { DType, HostArray } from './dtype.js';
export { DeviceError, DeviceMismatchError, DisposedError, DTypeError, OutOfMemoryError, ShapeError, StepError } from './errors.js';
export { broadcastShapes, formatShape, sizeOf } from './shape.js';
export type { Shape } from './shape.js';
export { CATEGORIES, MODEL_STATE_CATEGORIES, MemoryTracker, formatBytes, zeroByCategory } from './memory.js';
export type { ByCategory, Category, MemoryEvent, MemoryReport } from './memory.js';
export { PeakWindow } from './peak-window.js';
export type { PeakWindowReport } from './peak-window.js';
export { BufferPool } from './pool.js';
export type { Allocation } from './pool.js';
export { Tensor } from './tensor.js';
export { keep, scope, scopeSync } from './scope.js';
export { Generator, defaultGenerator, manualSeed, philox4x32 } from './random.js';
export type { GeneratorState } from './random.js';
export { arange, clone, empty, fromArray, full, ones, rand, randn, toDevice, zeros } from './creation.js';
export type { CreateOptions, RandomOptions } from './creation.js';
export { parameter } from './parameter.js';
export type { ParameterOptions } from './parameter.js';
export { memory, resetPeak, setMemoryLimit, memoryTimeline } from './memory-api.js';
export { SafetensorsError, SafetensorsReader, loadSafetensors, openSafetensors, saveSafetensors } from './safetensors.js';
export type { LoadOptions, LoadTensorOptions, SafetensorsDType, SafetensorsEntry, SafetensorsHeader, TensorMap } from './safetensors.js';
export { Adam, AdamW, GALORE_DEFAULTS, GaLoreAdamW, LossScaler, Optimizer, SGD, constantSchedule, jaggedCosineSchedule, warmupCosineSchedule } from './optim/index.js';
export { OPTIMIZER_STATE_FORMAT, loadOptimizerState, saveOptimizerState } from './optim/index.js';
export type {
  AdamHyper, AdamOptions, BaseHyper, GaLoreHyper, GaLoreOptions, JaggedCosineOptions, LossScalerOptions, LossScalerState, LrSchedule, OptimizerKind,
  OptimizerOptions, ParamGroup, ParamGroupSpec, ParamState, Precision, ResetMode, ResetOptions, SgdHyper, SgdOptions,
  StepOptions, StepResult, WarmupCosineOptions,
} from './optim/index.js';
export { writeFileAtomic } from './atomic-write.js';
