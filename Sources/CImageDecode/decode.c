// PNG through libpng's simplified png_image_* API (it catches its own errors and returns a
// status); JPEG through libjpeg with an error manager whose error_exit longjmps back to a
// setjmp in the same C function. Nothing here unwinds into Swift.
#include "sskd_image_decode.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) { snprintf(err, errlen, "%s", msg); }
}

void sskd_image_free(unsigned char *p) { free(p); }

// MARK: PNG

/// The error for a decoded size above the caller's limit (the header is read, nothing allocated).
static void set_too_large(char *err, size_t errlen, size_t width, size_t height, int c, size_t max_bytes) {
    if (err && errlen) {
        snprintf(err, errlen, "a %zux%zu image with %d channels needs more than the %zu bytes allowed (memory limit)",
                 width, height, c, max_bytes);
    }
}

int sskd_png_decode(const char *path, size_t max_bytes, unsigned char **out, int *width, int *height, int *channels,
                    char *err, size_t errlen) {
    *out = NULL;
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, path)) {
        set_err(err, errlen, image.message[0] ? image.message : "cannot read PNG header");
        png_image_free(&image);
        return -1;
    }
    int c;
    if (image.format & PNG_FORMAT_FLAG_COLOR) {
        c = (image.format & PNG_FORMAT_FLAG_ALPHA) ? 4 : 3;
    } else {
        c = (image.format & PNG_FORMAT_FLAG_ALPHA) ? 4 : 1;
    }
    // 8-bit sRGB output in the stored layout (no alpha compositing: PIL's convert("RGB") drops alpha).
    image.format = c == 1 ? PNG_FORMAT_GRAY : (c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA);
    size_t stride = (size_t)image.width * (size_t)c;
    size_t size = stride * (size_t)image.height;
    if (image.width == 0 || image.height == 0 || size / stride != image.height) {
        set_err(err, errlen, "PNG has invalid dimensions");
        png_image_free(&image);
        return -1;
    }
    if (size > max_bytes || image.width > 0x7fffffff || image.height > 0x7fffffff) {
        set_too_large(err, errlen, image.width, image.height, c, max_bytes);
        png_image_free(&image);
        return -1;
    }
    unsigned char *buf = (unsigned char *)malloc(size);
    if (!buf) {
        set_err(err, errlen, "out of memory");
        png_image_free(&image);
        return -1;
    }
    if (!png_image_finish_read(&image, NULL, buf, (png_int_32)stride, NULL)) {
        set_err(err, errlen, image.message[0] ? image.message : "corrupt PNG data");
        free(buf);
        png_image_free(&image);
        return -1;
    }
    *out = buf;
    *width = (int)image.width;
    *height = (int)image.height;
    *channels = c;
    png_image_free(&image);
    return 0;
}

int sskd_png_encode(const char *path, const unsigned char *pixels, int width, int height, int channels,
                    char *err, size_t errlen) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    switch (channels) {
    case 1: image.format = PNG_FORMAT_GRAY; break;
    case 2: image.format = PNG_FORMAT_GA; break;
    case 3: image.format = PNG_FORMAT_RGB; break;
    case 4: image.format = PNG_FORMAT_RGBA; break;
    default: set_err(err, errlen, "PNG channels must be 1...4"); return -1;
    }
    if (!png_image_write_to_file(&image, path, 0, pixels, (png_int_32)(width * channels), NULL)) {
        set_err(err, errlen, image.message[0] ? image.message : "cannot write PNG");
        png_image_free(&image);
        return -1;
    }
    png_image_free(&image);
    return 0;
}

// MARK: JPEG

struct sskd_jpeg_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int corrupt;                       // a warning that means the data is truncated or damaged
    char message[JMSG_LENGTH_MAX];
};

static void sskd_jpeg_error_exit(j_common_ptr cinfo) {
    struct sskd_jpeg_error *e = (struct sskd_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void sskd_jpeg_emit_message(j_common_ptr cinfo, int level) {
    struct sskd_jpeg_error *e = (struct sskd_jpeg_error *)cinfo->err;
    if (level < 0) {
        int code = cinfo->err->msg_code;
        if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC) {
            if (!e->corrupt) { (*cinfo->err->format_message)(cinfo, e->message); }
            e->corrupt = 1;
        }
        cinfo->err->num_warnings++;
    }
}

static void sskd_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

int sskd_jpeg_decode(const char *path, size_t max_bytes, unsigned char **out, int *width, int *height, int *channels,
                     char *err, size_t errlen) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) { set_err(err, errlen, strerror(errno)); return -1; }
    struct jpeg_decompress_struct cinfo;
    struct sskd_jpeg_error jerr;
    memset(&jerr, 0, sizeof jerr);
    // volatile: modified between setjmp and longjmp.
    unsigned char *volatile buf = NULL;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = sskd_jpeg_error_exit;
    jerr.pub.emit_message = sskd_jpeg_emit_message;
    jerr.pub.output_message = sskd_jpeg_output_message;
    // Every failure ends at `fail` with `why` set: libjpeg errors longjmp back here (inside C).
    const char *volatile why = NULL;
    if (setjmp(jerr.jump)) { why = jerr.message; goto fail; }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        why = "CMYK JPEG images are not supported";
        goto fail;
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int c = cinfo.output_components;
    size_t stride = (size_t)cinfo.output_width * (size_t)c;
    // JPEG sides are at most 65535, so the product cannot overflow a size_t.
    if (stride * cinfo.output_height > max_bytes) {
        set_too_large(err, errlen, cinfo.output_width, cinfo.output_height, c, max_bytes);
        why = err;
        goto fail;
    }
    buf = (unsigned char *)malloc(stride * cinfo.output_height);
    if (!buf) { why = "out of memory"; goto fail; }
    while (cinfo.output_scanline < cinfo.output_height && !jerr.corrupt) {
        JSAMPROW row = buf + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    if (!jerr.corrupt) { jpeg_finish_decompress(&cinfo); }
    if (jerr.corrupt) { why = jerr.message; goto fail; }
    *out = buf;
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    *channels = c;
    jpeg_destroy_decompress(&cinfo);
    fclose(f);
    return 0;

fail:
    if (why != err) { set_err(err, errlen, why); }  // set_too_large wrote err itself
    jpeg_destroy_decompress(&cinfo);
    fclose(f);
    free(buf);
    return -1;
}

int sskd_jpeg_encode(const char *path, const unsigned char *pixels, int width, int height, int channels,
                     int quality, char *err, size_t errlen) {
    if (channels != 1 && channels != 3) { set_err(err, errlen, "JPEG channels must be 1 or 3"); return -1; }
    FILE *f = fopen(path, "wb");
    if (!f) { set_err(err, errlen, strerror(errno)); return -1; }
    struct jpeg_compress_struct cinfo;
    struct sskd_jpeg_error jerr;
    memset(&jerr, 0, sizeof jerr);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = sskd_jpeg_error_exit;
    jerr.pub.output_message = sskd_jpeg_output_message;
    if (setjmp(jerr.jump)) {
        set_err(err, errlen, jerr.message);
        jpeg_destroy_compress(&cinfo);
        fclose(f);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + stride * cinfo.next_scanline);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    if (fclose(f) != 0) { set_err(err, errlen, strerror(errno)); return -1; }
    return 0;
}
