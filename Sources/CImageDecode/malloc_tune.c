// glibc malloc thresholds for the image pipeline (see Sources/SSKDData/Allocator.swift).
// malloc.h is not part of Swift's Glibc module, so this lives in C.
#include "sskd_image_decode.h"
#include <stdlib.h>  /* defines __GLIBC__ on glibc */

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int sskd_malloc_keep_freed(long mmap_threshold, long trim_threshold) {
#if defined(__GLIBC__)
    int ok = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold);
    ok &= mallopt(M_TRIM_THRESHOLD, (int)trim_threshold);
    return ok ? 0 : -1;
#else
    (void)mmap_threshold; (void)trim_threshold;
    return -1;
#endif
}
