/* Images: 8-bit buffers, PNG writing and grayscale PNG reading through libpng, and a strict
 * PGM (P5 binary / P2 ASCII) parser. Grayscale reads give float64 arrays (height, width)
 * scaled to [0, 1], the form `advect bbot --rho0 image.png` needs. */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

adv_status advio_image_alloc(advio_image *img, int width, int height, int channels,
                             uint8_t fill, char *msg, size_t msg_size) {
    memset(img, 0, sizeof *img);
    if (width < 1 || height < 1 || width > ADVIO_IMAGE_MAX_SIDE || height > ADVIO_IMAGE_MAX_SIDE ||
        (int64_t)width * height > ADVIO_IMAGE_MAX_PIXELS)
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "image size %dx%d is out of range",
                          width, height);
    if (channels != 1 && channels != 3)
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_VALUE, "images have 1 or 3 channels, not %d",
                          channels);
    size_t bytes = (size_t)width * (size_t)height * (size_t)channels;
    img->pixels = malloc(bytes);
    if (!img->pixels) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    memset(img->pixels, fill, bytes);
    img->width = width;
    img->height = height;
    img->channels = channels;
    return ADV_OK;
}

void advio_image_free(advio_image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* libpng reports errors through a callback that must not return: keep the text, jump back. */
typedef struct png_err {
    char text[200];
} png_err;

static void png_on_error(png_structp png, png_const_charp text) {
    png_err *e = png_get_error_ptr(png);
    if (e) snprintf(e->text, sizeof e->text, "%s", text);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp text) { (void)png, (void)text; }

adv_status advio_png_write_stream(FILE *f, const advio_image *img, char *msg, size_t msg_size) {
    if (!f || !img || !img->pixels)
        return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "stream or image is NULL");
    if (img->channels != 1 && img->channels != 3)
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_VALUE, "images have 1 or 3 channels");
    png_err err = {""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    if (!png) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "libpng: cannot create a writer");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "libpng: cannot create a writer");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return advio_fail(msg, msg_size, ADV_ERR_IO, "PNG write failed: %s", err.text);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 img->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; ++y) png_write_row(png, img->pixels + (size_t)y * stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fflush(f) != 0 || ferror(f))
        return advio_fail(msg, msg_size, ADV_ERR_IO, "PNG write failed: %s", strerror(errno));
    return ADV_OK;
}

adv_status advio_png_write(const char *path, const advio_image *img, char *msg, size_t msg_size) {
    advio_atomic a;
    adv_status s = advio_atomic_open(&a, path, msg, msg_size);
    if (s != ADV_OK) return s;
    s = advio_png_write_stream(a.f, img, msg, msg_size);
    if (s != ADV_OK) {
        advio_atomic_abort(&a);
        return s;
    }
    return advio_atomic_commit(&a, msg, msg_size);
}

/* State that must survive the longjmp of a libpng error (kept off the setjmp frame's locals). */
typedef struct png_read_state {
    png_err err;
    unsigned char *rows;
    png_bytep *row_ptrs;
} png_read_state;

adv_status advio_png_read_gray(const char *path, advio_array *out, char *msg, size_t msg_size) {
    if (!out || !path) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "path or out is NULL");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return advio_fail(msg, msg_size, ADV_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(f);
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "'%s': not a PNG file (bad signature)", path);
    }
    png_read_state *st = calloc(1, sizeof *st);
    if (!st) {
        fclose(f);
        return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st->err, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        if (png) png_destroy_read_struct(&png, NULL, NULL);
        free(st);
        fclose(f);
        return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "libpng: cannot create a reader");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        adv_status s = advio_fail(msg, msg_size, ADV_ERR_FORMAT, "'%s': invalid PNG: %s", path,
                                  st->err.text);
        free(st->rows);
        free(st->row_ptrs);
        free(st);
        fclose(f);
        return s;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, ADVIO_IMAGE_MAX_SIDE, ADVIO_IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if ((int64_t)w * h > ADVIO_IMAGE_MAX_PIXELS) png_error(png, "image too large");
    // Normalise every PNG kind to 8- or 16-bit gray: palettes and low depths expanded,
    // colour to luminance, alpha and transparency dropped.
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    if ((color & PNG_COLOR_MASK_COLOR) || color == PNG_COLOR_TYPE_PALETTE)
        png_set_rgb_to_gray_fixed(png, 1, -1, -1);
    if (png_get_interlace_type(png, info) != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int out_depth = png_get_bit_depth(png, info);
    int channels = png_get_channels(png, info);
    if (channels != 1 || (out_depth != 8 && out_depth != 16)) png_error(png, "unexpected pixel layout");
    size_t rowbytes = png_get_rowbytes(png, info);
    st->rows = malloc(rowbytes * h);
    st->row_ptrs = malloc(sizeof(png_bytep) * h);
    if (!st->rows || !st->row_ptrs) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; ++y) st->row_ptrs[y] = st->rows + (size_t)y * rowbytes;
    png_read_image(png, st->row_ptrs);
    png_read_end(png, NULL);
    double *data = malloc(sizeof(double) * (size_t)w * h);
    if (!data) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; ++y) {
        const unsigned char *r = st->row_ptrs[y];
        for (png_uint_32 x = 0; x < w; ++x)
            data[(size_t)y * w + x] = out_depth == 8 ? r[x] / 255.0
                                                     : (r[2 * x] << 8 | r[2 * x + 1]) / 65535.0;
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(st->rows);
    free(st->row_ptrs);
    free(st);
    fclose(f);
    out->dtype = ADV_FLOAT64;
    out->ndim = 2;
    out->shape[0] = h;
    out->shape[1] = w;
    out->count = (size_t)w * h;
    out->data = data;
    return ADV_OK;
}

/* ---- PGM ---- */

static int pgm_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and '#' comments (to end of line) in the header. */
static void pgm_skip(const unsigned char **p, const unsigned char *end) {
    while (*p < end) {
        if (pgm_space(**p))
            ++*p;
        else if (**p == '#')
            while (*p < end && **p != '\n' && **p != '\r') ++*p;
        else
            break;
    }
}

/* Decimal integer in [0, limit]; 0 ok, -1 missing, -2 out of range. */
static int pgm_int(const unsigned char **p, const unsigned char *end, long limit, long *v) {
    if (*p >= end || **p < '0' || **p > '9') return -1;
    long x = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        x = x * 10 + (**p - '0');
        if (x > limit) return -2;
        ++*p;
    }
    if (*p < end && !pgm_space(**p) && **p != '#') return -1; // "12x"
    *v = x;
    return 0;
}

adv_status advio_pgm_parse(const void *buf, size_t size, advio_array *out, char *msg,
                           size_t msg_size) {
    if (!out) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "out is NULL");
    memset(out, 0, sizeof *out);
    const unsigned char *p = buf, *end = p + size;
    if (size < 2 || p[0] != 'P' || (p[1] != '5' && p[1] != '2'))
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "not a PGM file (expected 'P5' or 'P2')");
    int binary = p[1] == '5';
    p += 2;
    if (p < end && !pgm_space(*p) && *p != '#')
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "PGM: malformed magic number");
    long v[3];
    static const char *const names[3] = {"width", "height", "maxval"};
    const long limits[3] = {ADVIO_IMAGE_MAX_SIDE, ADVIO_IMAGE_MAX_SIDE, 65535};
    for (int k = 0; k < 3; ++k) {
        pgm_skip(&p, end);
        int r = pgm_int(&p, end, limits[k], &v[k]);
        if (r == -2 || (r == 0 && v[k] == 0))
            return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "PGM: %s out of range (1..%ld)",
                              names[k], limits[k]);
        if (r < 0) return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "PGM: missing or malformed %s", names[k]);
    }
    long w = v[0], h = v[1], maxval = v[2];
    if ((int64_t)w * h > ADVIO_IMAGE_MAX_PIXELS)
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "PGM: image too large (%ldx%ld)", w, h);
    size_t n = (size_t)w * (size_t)h;
    double *data = malloc(n * sizeof *data);
    if (!data) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    if (binary) {
        // Exactly one whitespace byte separates maxval from the raster.
        if (p >= end || !pgm_space(*p)) {
            free(data);
            return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "PGM: truncated header");
        }
        ++p;
        size_t bpp = maxval > 255 ? 2 : 1;
        size_t have = (size_t)(end - p);
        if (have < n * bpp) {
            free(data);
            return advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                              "PGM: truncated data (%zu bytes expected, %zu present)", n * bpp, have);
        }
        if (have > n * bpp) {
            free(data);
            return advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                              "PGM: trailing garbage (%zu bytes after the data)", have - n * bpp);
        }
        for (size_t i = 0; i < n; ++i) {
            long x = bpp == 2 ? (long)p[2 * i] << 8 | p[2 * i + 1] : p[i];
            if (x > maxval) {
                free(data);
                return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "PGM: pixel %zu (%ld) exceeds maxval %ld",
                                  i, x, maxval);
            }
            data[i] = (double)x / (double)maxval;
        }
    } else {
        for (size_t i = 0; i < n; ++i) {
            while (p < end && pgm_space(*p)) ++p;
            long x;
            int r = pgm_int(&p, end, maxval, &x);
            if (r != 0) {
                free(data);
                if (r == -2)
                    return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "PGM: pixel %zu exceeds maxval %ld", i, maxval);
                return advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                                  p >= end ? "PGM: truncated data (pixel %zu missing)"
                                           : "PGM: malformed pixel value at pixel %zu",
                                  i);
            }
            data[i] = (double)x / (double)maxval;
        }
        while (p < end && pgm_space(*p)) ++p;
        if (p != end) {
            free(data);
            return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "PGM: trailing garbage after the data");
        }
    }
    out->dtype = ADV_FLOAT64;
    out->ndim = 2;
    out->shape[0] = h;
    out->shape[1] = w;
    out->count = n;
    out->data = data;
    return ADV_OK;
}

adv_status advio_gray_read(const char *path, advio_array *out, char *msg, size_t msg_size) {
    if (!out || !path) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "path or out is NULL");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return advio_fail(msg, msg_size, ADV_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char head[8] = {0};
    size_t got = fread(head, 1, 8, f);
    fclose(f);
    if (got == 8 && png_sig_cmp(head, 0, 8) == 0) return advio_png_read_gray(path, out, msg, msg_size);
    if (got >= 2 && head[0] == 'P' && (head[1] == '5' || head[1] == '2')) {
        char *buf;
        size_t size;
        adv_status s = advio_read_file(path, &buf, &size, msg, msg_size);
        if (s != ADV_OK) return s;
        char why[300];
        s = advio_pgm_parse(buf, size, out, why, sizeof why);
        free(buf);
        if (s != ADV_OK) return advio_fail(msg, msg_size, s, "'%s': %s", path, why);
        return ADV_OK;
    }
    return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "'%s': not a PNG or PGM (P5/P2) image", path);
}
