// The raw syscall layer: struct bytes built by hand, exactly as in include/uapi/linux/iommufd.h,
// every call returning >= 0 or -errno, as a C program would see it.
import {
  createKernel, errno, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, MAP_ANONYMOUS, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE,
} from "vfio-emu";

const kernel = await createKernel({ memoryBytes: 64 << 20 });
const proc = kernel.createProcess();
const fd = proc.open("/dev/iommu", O_RDWR);

// struct iommu_ioas_alloc { __u32 size; __u32 flags; __u32 out_ioas_id; }
const alloc = new Uint8Array(12);
new DataView(alloc.buffer).setUint32(0, 12, true);
console.log(`IOMMU_IOAS_ALLOC -> ${proc.ioctlBuf(fd, IOMMU_IOAS_ALLOC, alloc)}`);
const ioasId = new DataView(alloc.buffer).getUint32(8, true);
console.log(`out_ioas_id = ${ioasId}`);

// struct iommu_ioas_map { size, flags, ioas_id, __reserved; __aligned_u64 user_va, length, iova; }
const buf = proc.mmap(0, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
const map = (iova) => {
  const m = new DataView(new ArrayBuffer(40));
  m.setUint32(0, 40, true);
  m.setUint32(4, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, true);
  m.setUint32(8, ioasId, true);
  m.setBigUint64(16, BigInt(buf), true);
  m.setBigUint64(24, 1n << 16n, true);
  m.setBigUint64(32, iova, true);
  return proc.ioctlBuf(fd, IOMMU_IOAS_MAP, new Uint8Array(m.buffer));
};
console.log(`IOMMU_IOAS_MAP at 0x100000 -> ${map(0x100000n)}`);
const again = map(0x100000n);
console.log(`IOMMU_IOAS_MAP over it again -> ${again} (${again === -errno.EEXIST ? "-EEXIST" : "?"})`);
console.log(`close -> ${proc.close(fd)}`);
await kernel.close();
