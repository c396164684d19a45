// placeholder: filled by the rope kernel family
export {};
