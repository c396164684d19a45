// placeholder: filled by the matmul kernel family
export {};
