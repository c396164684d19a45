// placeholder: filled by the reduce kernel family
export {};
