// placeholder: filled by the layout kernel family
export {};
