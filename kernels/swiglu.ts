// placeholder: filled by the swiglu kernel family
export {};
