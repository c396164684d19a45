/** Atomic writes live in the engine (safetensors needs them too); re-exported for the data modules. */
export { tempPathFor, writeAtomic, writeFileAtomic } from '../../engine/atomic-write.js';
