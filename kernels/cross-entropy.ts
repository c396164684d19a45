// placeholder: filled by the cross-entropy kernel family
export {};
