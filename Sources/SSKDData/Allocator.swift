// glibc malloc settings for the augmentation pipeline.
//
// Each transform allocates a fresh image (a 3x96x96 float image is 108 KiB). With glibc's
// defaults, freeing such a buffer at the top of the heap trims it back to the kernel (trim
// threshold 128 KiB) and the next allocation faults the pages in again, zero-filled: measured,
// this page-fault churn cost 60 % of the paper transform's time. Keeping freed memory in the
// heap (as PyTorch's caching allocator does for tensors) removes it.

import CImageDecode
#if canImport(Glibc)
import Glibc
#endif

public enum Allocator {
    /// Raises glibc's trim and mmap thresholds once per process (to 256 MiB and 32 MiB), so
    /// image-sized buffers are reused instead of being returned to the kernel and faulted back
    /// in. Called by `DataLoader.init`; safe to call more than once. Set `SSKD_MALLOC_DEFAULTS=1`
    /// to keep glibc's defaults.
    public static func tuneForImages() { _ = tuned }

    private static let tuned: Bool = {
        if getenv("SSKD_MALLOC_DEFAULTS") != nil { return false }
        return sskd_malloc_keep_freed(32 << 20, 256 << 20) == 0
    }()
}
