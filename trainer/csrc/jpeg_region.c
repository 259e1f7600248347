/* JPEG decoding through libjpeg-turbo's libjpeg API, only over the rows and columns a crop
 * needs and, when asked, at a reduced DCT scale (1/2, 1/4, 1/8).
 *
 * libjpeg reports fatal errors by calling error_exit, which must not return: here it longjmps
 * back into this file, so no Rust frame is ever jumped over. Warnings (corrupt bytes between
 * markers, which Pillow also decodes through) are ignored, except a premature end of data,
 * which is a truncated file: libjpeg would pad it with grey. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

struct nls_error {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char *message;
    size_t message_len;
};

static void nls_error_exit(j_common_ptr cinfo) {
    struct nls_error *err = (struct nls_error *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(err->message, err->message_len, "%s", text);
    longjmp(err->jump, 1);
}

static void nls_emit_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        nls_error_exit(cinfo);
    }
}

/* What the header says: the full size, the number of components and whether they are CMYK
 * or YCCK (4 components). */
struct nls_jpeg_header {
    int width;
    int height;
    int components;
};

/* The decoded part: `height` rows of `width` pixels of `channels` bytes, whose first pixel is
 * pixel (x, y) of the image at the requested scale. */
struct nls_jpeg_part {
    int x;
    int y;
    int width;
    int height;
    int channels;
};

static void nls_setup(struct jpeg_decompress_struct *cinfo, struct nls_error *err,
                      char *message, size_t message_len) {
    cinfo->err = jpeg_std_error(&err->mgr);
    err->mgr.error_exit = nls_error_exit;
    err->mgr.emit_message = nls_emit_message;
    err->message = message;
    err->message_len = message_len;
}

/* Reads the header into `header`; then, unless `out` is NULL, decodes rows [y, y + height) and
 * columns [x, x + width) of the image scaled by 1/denom (coordinates at that scale) into `out`
 * (`capacity` bytes). libjpeg widens the columns to whole blocks: `part` says which were
 * written. Gray stays one channel, CMYK/YCCK come out as the file's four CMYK bytes (Adobe's
 * inverted storage), everything else as RGB. */
int nls_jpeg_decode(const unsigned char *data, unsigned long size, int denom, int x, int y,
                    int width, int height, unsigned char *out, size_t capacity,
                    struct nls_jpeg_header *header, struct nls_jpeg_part *part, char *message,
                    size_t message_len) {
    struct jpeg_decompress_struct cinfo;
    struct nls_error err;
    nls_setup(&cinfo, &err, message, message_len);
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    header->width = (int)cinfo.image_width;
    header->height = (int)cinfo.image_height;
    header->components = cinfo.num_components;
    if (out == NULL) {
        jpeg_destroy_decompress(&cinfo);
        return 0;
    }
    if (cinfo.num_components == 4) {
        cinfo.out_color_space = JCS_CMYK;
    } else if (cinfo.jpeg_color_space != JCS_GRAYSCALE) {
        cinfo.out_color_space = JCS_RGB;
    }
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)denom;
    jpeg_start_decompress(&cinfo);
    int full_width = (int)cinfo.output_width, full_height = (int)cinfo.output_height;
    if (x < 0 || y < 0 || width <= 0 || height <= 0 || x + width > full_width ||
        y + height > full_height) {
        snprintf(message, message_len, "region %dx%d at (%d, %d) leaves the %dx%d image", width,
                 height, x, y, full_width, full_height);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    JDIMENSION xoffset = (JDIMENSION)x, cropped = (JDIMENSION)width;
    if (width < full_width) {
        jpeg_crop_scanline(&cinfo, &xoffset, &cropped);
    }
    int channels = cinfo.output_components;
    size_t stride = (size_t)cropped * (size_t)channels;
    if (stride * (size_t)height > capacity) {
        snprintf(message, message_len, "region needs %zu bytes, the buffer holds %zu",
                 stride * (size_t)height, capacity);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    if (y > 0) {
        jpeg_skip_scanlines(&cinfo, (JDIMENSION)y);
    }
    for (int row = 0; row < height;) {
        JSAMPROW rows[1] = {out + (size_t)row * stride};
        JDIMENSION got = jpeg_read_scanlines(&cinfo, rows, 1);
        if (got == 0) {
            snprintf(message, message_len, "the decoder stopped at row %d", y + row);
            jpeg_destroy_decompress(&cinfo);
            return -1;
        }
        row += (int)got;
    }
    part->x = (int)xoffset;
    part->y = y;
    part->width = (int)cropped;
    part->height = height;
    part->channels = channels;
    /* The rows below the region are never decoded. */
    jpeg_abort_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

/* Encodes `height` rows of `width` pixels (`channels`: 1 gray, 3 RGB) at `quality` with 4:2:0
 * chroma, as Pillow's `save(quality=q)` does, with a restart marker every `restart_interval`
 * MCUs (0: none; the markers change no pixel). The bytes are malloc'd: free them with
 * nls_jpeg_free (on failure they are freed here). */
int nls_jpeg_encode(const unsigned char *pixels, int width, int height, int channels,
                    int quality, int restart_interval, unsigned char **out,
                    unsigned long *out_len, char *message, size_t message_len) {
    struct jpeg_compress_struct cinfo;
    struct nls_error err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = nls_error_exit;
    err.message = message;
    err.message_len = message_len;
    *out = NULL;
    *out_len = 0;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(*out);
        *out = NULL;
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, out, out_len);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    cinfo.restart_interval = (unsigned int)restart_interval;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * (size_t)width *
                                               (size_t)channels);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return 0;
}

void nls_jpeg_free(unsigned char *bytes) { free(bytes); }

/* Rewrites a JPEG losslessly — its DCT coefficients, quantization tables and sampling as they
 * are — as one baseline scan with optimized Huffman tables and a restart marker every
 * `interval` MCUs, as `jpegtran -optimize -restart N` does. The bytes are malloc'd: free them
 * with nls_jpeg_free. */
int nls_jpeg_restart(const unsigned char *data, unsigned long size, int interval,
                     unsigned char **out, unsigned long *out_len, char *message,
                     size_t message_len) {
    struct jpeg_decompress_struct src;
    struct jpeg_compress_struct dst;
    struct nls_error err;
    nls_setup(&src, &err, message, message_len);
    dst.err = src.err;
    *out = NULL;
    *out_len = 0;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&dst);
        jpeg_destroy_decompress(&src);
        free(*out);
        *out = NULL;
        return -1;
    }
    jpeg_create_decompress(&src);
    jpeg_create_compress(&dst);
    if (interval <= 0 || interval > 65535) {
        snprintf(message, message_len, "restart interval %d is not within 1–65535", interval);
        longjmp(err.jump, 1);
    }
    jpeg_mem_src(&src, data, size);
    jpeg_read_header(&src, TRUE);
    jvirt_barray_ptr *coefficients = jpeg_read_coefficients(&src);
    jpeg_copy_critical_parameters(&src, &dst);
    dst.restart_interval = (unsigned int)interval;
    dst.optimize_coding = TRUE;
    jpeg_mem_dest(&dst, out, out_len);
    jpeg_write_coefficients(&dst, coefficients);
    jpeg_finish_compress(&dst);
    jpeg_finish_decompress(&src);
    jpeg_destroy_compress(&dst);
    jpeg_destroy_decompress(&src);
    return 0;
}
