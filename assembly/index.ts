// The data-plane core: one module, instantiated in every thread over the one shared memory.
// It exports functions and the memory map's constants; it allocates nothing managed.

export * from "./layout";
export * from "./frames";
export {
  PTE_P, PTE_W, PTE_U, PTE_PS, PTE_SPECIAL, PTE_ADDR,
  radix_alloc_root, radix_lookup, radix_install, radix_remove, radix_protect, radix_destroy,
} from "./radix";
export * from "./gup";
export * from "./gate";
export * from "./eventfd";
export * from "./stats";
export * from "./epoch";
export { IRQ_SENT, IRQ_PENDING, IRQ_OFF, irq_raise, irq_unmask, irq_mask, irq_flush } from "./msi";
// IOMMU data plane. Named lists: the formats' internals take u64 IOVAs and stay inside wasm.
export {
  IOPT_X86, IOPT_MOCK, IOMMU_READ, IOMMU_WRITE, LEAF_P, LEAF_R, LEAF_W, LEAF_D, LEAF_SHIFT_POS, LEAF_FLAGS,
} from "./iopt";
export {
  X86_R, X86_W, X86_PS, X86_A, X86_D, X86_P, X86_IOVA_BITS, X86_PGSIZE_BITMAP,
} from "./iopt_x86";
export {
  MOCK_P, MOCK_START, MOCK_LAST, MOCK_HUGE, MOCK_DIRTY, MOCK_R, MOCK_W, MOCK_PFN_MASK, MOCK_IO_PAGE_SHIFT,
  MOCK_HUGE_SHIFT, MOCK_APERTURE_START, MOCK_APERTURE_LAST, MOCK_PGSIZE, MOCK_PGSIZE_HUGE,
} from "./iopt_mock";
export {
  DOM_FORMAT, DOM_FLAGS, DOM_ROOT, DOM_PGSIZE, DOM_SERIAL, DOM_INV, DOM_TABLES, DOM_MAPPED, DOM_SHIFTS,
  DOMAIN_F_HUGE, DOMAIN_F_DIRTY_TRACKING, domain_valid, domain_alloc, domain_free, domain_invalidate,
  domain_page_shift, domain_serial, domain_tables, domain_mapped_pages, domain_pgsize_bitmap, domain_map,
  domain_unmap, domain_lookup, domain_iova_to_phys, domain_read_and_clear_dirty, domain_mark_dirty,
  domain_set_dirty_tracking,
} from "./domain";
export {
  FAULT_REASON_UNMAPPED, FAULT_REASON_PERM, FAULT_REASON_BLOCKED, FAULT_REASON_RANGE, FAULT_F_WRITE,
  FAULT_SEQ, FAULT_IOVA_LO, FAULT_IOVA_HI, FAULT_FLAGS, FAULT_DOM, FAULT_SERIAL, FAULT_SLOT,
  fault_head, fault_rec,
} from "./fault";
export {
  iotlb_attach, iotlb_slot, iotlb_flush, iotlb_translate, iotlb_host, iotlb_avail,
} from "./iotlb";
export {
  DMA_DESC_OP, DMA_DESC_DOM, DMA_DESC_SRC_LO, DMA_DESC_SRC_HI, DMA_DESC_DST_LO, DMA_DESC_DST_HI, DMA_DESC_LEN,
  DMA_DESC_STATUS, DMA_DESC_SIZE, DMA_OP_READ, DMA_OP_WRITE, DMA_OP_COPY,
  dma_read, dma_write, dma_copy, dma_batch, dev_dma, dma_fault_done, dma_fault_seq,
} from "./dma";
// The I/OAT channel engine (device workers).
export * from "./ioat";
