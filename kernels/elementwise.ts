// placeholder: filled by the elementwise kernel family
export {};
