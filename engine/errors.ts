/** Errors meant for people: each names the op or file, the values involved and what to do. */
export class StepError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that do not fit the op (or a size that is negative, fractional or NaN). */
export class ShapeError extends StepError {}

/** A dtype the op or backend does not support, or two dtypes that do not match. */
export class DTypeError extends StepError {}

/** A tensor used after `dispose()`. */
export class DisposedError extends StepError {}

/** A tensor on one backend passed to an op on another. */
export class DeviceMismatchError extends StepError {}

/** No usable device: missing WebGPU adapter, missing feature, lost device. */
export class DeviceError extends StepError {}

/** An allocation beyond the memory limit, or beyond what the device can bind. */
export class OutOfMemoryError extends StepError {}
