// The data-plane core: one module, instantiated in every thread over the one shared memory.
// It exports functions and the memory map's constants; it allocates nothing managed.

export * from "./layout";
export * from "./frames";
export * from "./radix";
export * from "./gate";
export * from "./eventfd";
