// placeholder: filled by the softmax kernel family
export {};
