/* File formats and pictures for the advect command-line tool and its tests (private: not
 * installed, not part of the library API): strict .npy reading and writing, CSV matrices,
 * PNG writing, grayscale PNG/PGM reading, atomic output files, and small rasterisers
 * (scatter plots with a PCA projection, grids of grayscale tiles).
 *
 * Conventions: every function returns adv_status — ADV_ERR_IO when the file system fails,
 * ADV_ERR_FORMAT when a file's content is invalid, ADV_ERR_INVALID_VALUE/INVALID_SIZE for bad
 * arguments, ADV_ERR_OUT_OF_MEMORY — and, on failure, writes a one-line reason (no trailing
 * newline) into msg (msg_size bytes; msg may be NULL). Nothing here prints or exits. */
#ifndef ADVECT_HOST_IO_H
#define ADVECT_HOST_IO_H

#include "advect/core.h"
#include "atomic_file.h"

#include <stdint.h>
#include <stdio.h>

#define ADVIO_MAX_DIMS 8
/* Longest .npy header accepted on reading (NumPy itself refuses more than 10000 bytes by
 * default; a header of 8 dimensions needs under 200). */
#define ADVIO_NPY_MAX_HEADER 65536
/* Largest image side and pixel count accepted on reading. */
#define ADVIO_IMAGE_MAX_SIDE 65536
#define ADVIO_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* Records a reason in msg and returns status (for `return advio_fail(...)`). */
adv_status advio_fail(char *msg, size_t msg_size, adv_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- arrays ---- */

/* An n-dimensional array in C (row-major) order, owned by the struct. */
typedef struct advio_array {
    adv_precision dtype; /* ADV_FLOAT32 ('<f4') or ADV_FLOAT64 ('<f8') */
    int ndim;            /* 1..ADVIO_MAX_DIMS */
    int64_t shape[ADVIO_MAX_DIMS];
    size_t count;        /* product of the shape (may be 0) */
    void *data;          /* malloc'ed, never NULL after a successful read */
} advio_array;

void advio_array_free(advio_array *a);
/* Converts the elements to dtype in place (no-op when already of that dtype). */
adv_status advio_array_convert(advio_array *a, adv_precision dtype, char *msg, size_t msg_size);
/* 1 when every element is finite; otherwise 0 and *first_bad (if non-NULL) gets the index
 * of the first NaN or infinity. */
int advio_array_all_finite(const advio_array *a, size_t *first_bad);

/* ---- .npy (NumPy format versions 1.0, 2.0, 3.0) ----
 * Accepted: dtype '<f4' or '<f8'; 1 to ADVIO_MAX_DIMS dimensions; fortran_order False, or
 * True, in which case the data are transposed into C order on reading. Rejected with
 * ADV_ERR_FORMAT and a reason: bad magic, unknown version, header longer than
 * ADVIO_NPY_MAX_HEADER or than the file, malformed header dictionary (missing, unknown or
 * repeated keys, bad literals), any other dtype (big-endian, integers, objects...),
 * 0-dimensional arrays, a shape whose byte size overflows, truncated data, bytes after the
 * data. */
adv_status advio_npy_parse(const void *buf, size_t size, advio_array *out, char *msg,
                           size_t msg_size);
adv_status advio_npy_read(const char *path, advio_array *out, char *msg, size_t msg_size);
/* Writes a version 1.0 file (64-byte aligned header, as NumPy writes) of C-ordered data. */
adv_status advio_npy_write_stream(FILE *f, adv_precision dtype, int ndim, const int64_t *shape,
                                  const void *data, char *msg, size_t msg_size);
/* Only the header of such a file, for callers that stream the data afterwards (writing
 * count * item bytes at offset *header_bytes); *header_bytes may be NULL. */
adv_status advio_npy_write_header(FILE *f, adv_precision dtype, int ndim, const int64_t *shape,
                                  size_t *header_bytes, char *msg, size_t msg_size);
/* Same, into path through a temporary file renamed on success (see advio_atomic). */
adv_status advio_npy_write(const char *path, adv_precision dtype, int ndim,
                           const int64_t *shape, const void *data, char *msg, size_t msg_size);

/* ---- CSV: a 2-D float64 matrix ----
 * Comma-separated numbers, one row per line (LF or CRLF; a UTF-8 byte-order mark is skipped).
 * The first line may be a header (taken as one when none of its fields is a number; it
 * must have as many fields as the data rows). Rejected: rows with a different number of
 * fields, empty or non-numeric fields, NaN and infinities, blank lines between rows, no data
 * rows. Blank lines at the end are allowed. */
adv_status advio_csv_parse(const char *buf, size_t size, advio_array *out, char *msg,
                           size_t msg_size);
adv_status advio_csv_read(const char *path, advio_array *out, char *msg, size_t msg_size);

/* Point sets for the CLI: a .npy (float32/float64, 2-D) or .csv file, chosen by extension,
 * returned as a non-empty, finite float64 array of shape (n, d). */
adv_status advio_read_points(const char *path, advio_array *out, char *msg, size_t msg_size);

/* Reads a whole file into a malloc'ed buffer (one extra NUL byte is appended). */
adv_status advio_read_file(const char *path, char **buf, size_t *size, char *msg,
                           size_t msg_size);

/* ---- atomic output files ----
 * The data go to a hidden temporary file next to path (same directory, so the final rename
 * is atomic; its name does not depend on path's); commit flushes, syncs and renames it over
 * path; abort removes it. A failed or interrupted write therefore never leaves a partial
 * file at path. An existing path must be a regular file (see advio_check_output). A path
 * that is a symbolic link is written through: the file it names (created if the link
 * dangles) is replaced, and the link stays, as writing to a link does with open(). */
typedef struct advio_atomic {
    FILE *f;                 /* write here between open and commit */
    advi_atomic_file file;   /* the writer shared with the library (host/atomic_file.h) */
} advio_atomic;

/* ADV_OK when path may be written by an atomic output: it does not exist yet, or it is a
 * regular file (symbolic links followed). A directory, device, FIFO or socket there is
 * ADV_ERR_IO: the rename would replace the node itself (e.g. /dev/null by a plain file); so
 * are a loop of links and a link the writer will not follow (atomic_file.h). */
adv_status advio_check_output(const char *path, char *msg, size_t msg_size);
/* The path that writing to `path` reaches is advi_follow_links(path) (atomic_file.h). */
adv_status advio_atomic_open(advio_atomic *a, const char *path, char *msg, size_t msg_size);
adv_status advio_atomic_commit(advio_atomic *a, char *msg, size_t msg_size);
void advio_atomic_abort(advio_atomic *a);

/* ---- images ---- */

/* 8-bit image, rows from the top, channels 1 (gray) or 3 (RGB), interleaved. */
typedef struct advio_image {
    int width, height, channels;
    uint8_t *pixels;
} advio_image;

adv_status advio_image_alloc(advio_image *img, int width, int height, int channels,
                             uint8_t fill, char *msg, size_t msg_size);
void advio_image_free(advio_image *img);

/* PNG through libpng: 8-bit grayscale or RGB. */
adv_status advio_png_write_stream(FILE *f, const advio_image *img, char *msg, size_t msg_size);
adv_status advio_png_write(const char *path, const advio_image *img, char *msg,
                           size_t msg_size); /* atomic */

/* Grayscale images as float64 arrays of shape (height, width), row 0 at the top, values
 * scaled to [0, 1] (pixel / maxval). PNG: any bit depth; color is converted to luminance
 * (libpng's Rec. 709 weights) and alpha is ignored. PGM: binary P5 or ASCII P2, maxval
 * 1..65535, '#' comments in the header; truncated data, values above maxval and bytes after
 * the data are rejected. advio_gray_read picks the format from the first bytes. */
adv_status advio_pgm_parse(const void *buf, size_t size, advio_array *out, char *msg,
                           size_t msg_size);
adv_status advio_png_read_gray(const char *path, advio_array *out, char *msg, size_t msg_size);
adv_status advio_gray_read(const char *path, advio_array *out, char *msg, size_t msg_size);

/* ---- pictures ---- */

/* Symmetric eigen-decomposition by cyclic Jacobi rotations: a (d x d, row-major, destroyed)
 * -> eigenvalues in decreasing order and eigenvectors as the ROWS of vecs (d x d), each with
 * its largest-magnitude component positive (deterministic signs). */
adv_status advio_sym_eigen(int d, double *a, double *values, double *vecs, char *msg,
                           size_t msg_size);

/* Principal axes of n points in R^d (row-major): mean (d) and the two leading unit
 * eigenvectors of the covariance as rows of axes (2 x d). Jacobi on the explicit covariance
 * for d <= 128; beyond, subspace (block power) iteration on the implicit covariance, which
 * costs O(n d) per iteration instead of O(n d^2) to form the matrix. */
adv_status advio_pca2(const double *x, int64_t n, int d, double *mean, double *axes, char *msg,
                      size_t msg_size);

/* Scatter plot of samples (drawn on top, red) over data points (blue) in a width x height
 * RGB image; the view is the data's bounding box plus a margin, with equal scales on both
 * axes. d == 2: the coordinates; d > 2: the projection on the data's first two principal
 * components; d == 1: overlaid histograms. Either set may be empty (n = 0). */
adv_status advio_render_scatter(const double *data, int64_t n_data, const double *samples,
                                int64_t n_samples, int d, int width, int height,
                                advio_image *out, char *msg, size_t msg_size);

/* Grid of grayscale tiles: count tiles of th x tw values (row-major, one after the other),
 * cols per row, each value mapped linearly from [lo, hi] to [0, 255] (clamped), every pixel
 * repeated scale x scale times, tiles separated by a 2-pixel mid-gray border. */
adv_status advio_render_tiles(const double *tiles, int64_t count, int th, int tw, int cols,
                              double lo, double hi, int scale, advio_image *out, char *msg,
                              size_t msg_size);
/* How many of count such tiles advio_render_tiles can draw within ADVIO_IMAGE_MAX_SIDE and
 * ADVIO_IMAGE_MAX_PIXELS: *cols (at most its value on entry) is lowered to the columns that
 * fit, and the rows are cut to those that fit; returns the number of tiles of that grid (at
 * most count), 0 when not even one tile fits. */
int64_t advio_tiles_fit(int64_t count, int th, int tw, int scale, int *cols);

#endif
