// placeholder: filled by the rmsnorm kernel family
export {};
