// sskd_image_decode: PNG and JPEG decode/encode with all of libpng's and libjpeg's error
// handling (setjmp/longjmp) kept inside C, so no longjmp ever crosses a Swift frame.
// Every function returns 0 on success, or -1 with a message in `err` (NUL-terminated).
#ifndef SSKD_IMAGE_DECODE_H
#define SSKD_IMAGE_DECODE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Decodes a PNG file to 8-bit interleaved pixels with 1 (gray), 3 (RGB) or 4 (RGBA) channels
/// as stored (gray+alpha comes back as RGBA). `*out` is malloc'ed; free with sskd_image_free.
/// An image whose pixels need more than `max_bytes` is an error before anything is allocated.
int sskd_png_decode(const char *path, size_t max_bytes, unsigned char **out, int *width, int *height, int *channels,
                    char *err, size_t errlen);

/// Decodes a baseline or progressive JPEG to 8-bit interleaved pixels with 1 (grayscale) or
/// 3 (RGB) channels. A truncated or corrupt stream is an error (libjpeg would only warn).
/// An image whose pixels need more than `max_bytes` is an error before anything is allocated.
int sskd_jpeg_decode(const char *path, size_t max_bytes, unsigned char **out, int *width, int *height, int *channels,
                     char *err, size_t errlen);

/// Writes 8-bit interleaved pixels (1, 3 or 4 channels) as a PNG file.
int sskd_png_encode(const char *path, const unsigned char *pixels, int width, int height, int channels,
                    char *err, size_t errlen);

/// Writes 8-bit interleaved pixels (1 or 3 channels) as a JPEG file of the given quality (1...100).
int sskd_jpeg_encode(const char *path, const unsigned char *pixels, int width, int height, int channels,
                     int quality, char *err, size_t errlen);

void sskd_image_free(unsigned char *p);

/// Sets glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (bytes) so freed image buffers stay in the
/// heap. Returns 0, or -1 when not glibc or refused.
int sskd_malloc_keep_freed(long mmap_threshold, long trim_threshold);

#ifdef __cplusplus
}
#endif
#endif
