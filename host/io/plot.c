/* Small rasterisers for the CLI's pictures: scatter plots of samples over data (with a PCA
 * projection for d > 2 and histograms for d = 1) and grids of grayscale tiles. Also the
 * symmetric eigen-solver (cyclic Jacobi) and the two-axis PCA they need. No plotting library:
 * points are alpha-blended squares, which is all a sanity picture of a sampler needs. */
#include "io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- eigen-decomposition and PCA ---- */

adv_status advio_sym_eigen(int d, double *a, double *values, double *vecs, char *msg,
                           size_t msg_size) {
    if (d < 1) return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "matrix size %d", d);
    double *v = malloc(sizeof(double) * (size_t)d * (size_t)d);
    int *order = malloc(sizeof(int) * (size_t)d);
    if (!v || !order) {
        free(v);
        free(order);
        return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) v[i * d + j] = i == j;
#define A(i, j) a[(size_t)(i) * (size_t)d + (size_t)(j)]
    double total = 0;
    for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) total += A(i, j) * A(i, j);
    for (int sweep = 0; sweep < 100; ++sweep) {
        double off = 0;
        for (int p = 0; p < d; ++p)
            for (int q = p + 1; q < d; ++q) off += A(p, q) * A(p, q);
        // Cyclic Jacobi converges quadratically; stop once the off-diagonal part is at the
        // level of rounding relative to the whole matrix.
        if (off <= 1e-32 * total || off == 0) break;
        for (int p = 0; p < d; ++p)
            for (int q = p + 1; q < d; ++q) {
                double apq = A(p, q);
                if (apq == 0) continue;
                double theta = (A(q, q) - A(p, p)) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int r = 0; r < d; ++r) { // columns p and q
                    double arp = A(r, p), arq = A(r, q);
                    A(r, p) = c * arp - s * arq;
                    A(r, q) = s * arp + c * arq;
                }
                for (int r = 0; r < d; ++r) { // rows p and q
                    double apr = A(p, r), aqr = A(q, r);
                    A(p, r) = c * apr - s * aqr;
                    A(q, r) = s * apr + c * aqr;
                }
                A(p, q) = A(q, p) = 0;
                for (int r = 0; r < d; ++r) {
                    double vrp = v[r * d + p], vrq = v[r * d + q];
                    v[r * d + p] = c * vrp - s * vrq;
                    v[r * d + q] = s * vrp + c * vrq;
                }
            }
    }
    for (int i = 0; i < d; ++i) order[i] = i;
    for (int i = 1; i < d; ++i) // insertion sort, decreasing eigenvalue
        for (int j = i; j > 0 && A(order[j], order[j]) > A(order[j - 1], order[j - 1]); --j) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int k = 0; k < d; ++k) {
        int c = order[k];
        values[k] = A(c, c);
        int big = 0;
        for (int r = 1; r < d; ++r)
            if (fabs(v[r * d + c]) > fabs(v[big * d + c])) big = r;
        double sign = v[big * d + c] < 0 ? -1 : 1;
        for (int r = 0; r < d; ++r) vecs[(size_t)k * d + r] = sign * v[r * d + c];
    }
#undef A
    free(v);
    free(order);
    return ADV_OK;
}

/* Orthonormalises the two columns q[0..d) and q[d..2d) (Gram-Schmidt); returns 0 if the
 * second one vanishes. */
static int orthonormalise2(double *q, int d) {
    double n0 = 0;
    for (int i = 0; i < d; ++i) n0 += q[i] * q[i];
    n0 = sqrt(n0);
    if (n0 == 0) return 0;
    for (int i = 0; i < d; ++i) q[i] /= n0;
    for (int pass = 0; pass < 2; ++pass) { // twice is enough (Kahan) for orthogonality
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += q[i] * q[d + i];
        for (int i = 0; i < d; ++i) q[d + i] -= dot * q[i];
    }
    double n1 = 0;
    for (int i = 0; i < d; ++i) n1 += q[d + i] * q[d + i];
    n1 = sqrt(n1);
    if (n1 == 0) return 0;
    for (int i = 0; i < d; ++i) q[d + i] /= n1;
    return 1;
}

/* z = C q for both columns, C the covariance of the centred points (never formed). */
static void cov_apply(const double *x, int64_t n, int d, const double *mean, const double *q,
                      double *z) {
    memset(z, 0, sizeof(double) * 2 * (size_t)d);
    for (int64_t k = 0; k < n; ++k) {
        const double *row = x + (size_t)k * d;
        double s0 = 0, s1 = 0;
        for (int i = 0; i < d; ++i) {
            double c = row[i] - mean[i];
            s0 += c * q[i];
            s1 += c * q[d + i];
        }
        for (int i = 0; i < d; ++i) {
            double c = row[i] - mean[i];
            z[i] += c * s0;
            z[d + i] += c * s1;
        }
    }
    for (int i = 0; i < 2 * d; ++i) z[i] /= (double)n;
}

adv_status advio_pca2(const double *x, int64_t n, int d, double *mean, double *axes, char *msg,
                      size_t msg_size) {
    if (d < 2 || n < 1) return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "PCA needs d >= 2 and n >= 1");
    for (int i = 0; i < d; ++i) mean[i] = 0;
    for (int64_t k = 0; k < n; ++k)
        for (int i = 0; i < d; ++i) mean[i] += x[(size_t)k * d + i];
    for (int i = 0; i < d; ++i) mean[i] /= (double)n;
    if (d <= 128) {
        size_t dd = (size_t)d * (size_t)d;
        double *c = calloc(dd, sizeof *c), *vals = malloc(sizeof(double) * (size_t)d),
               *vecs = malloc(sizeof(double) * dd);
        if (!c || !vals || !vecs) {
            free(c), free(vals), free(vecs);
            return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
        }
        for (int64_t k = 0; k < n; ++k) {
            const double *row = x + (size_t)k * d;
            for (int i = 0; i < d; ++i)
                for (int j = i; j < d; ++j) c[i * d + j] += (row[i] - mean[i]) * (row[j] - mean[j]);
        }
        for (int i = 0; i < d; ++i)
            for (int j = i; j < d; ++j) c[j * d + i] = c[i * d + j] /= (double)n;
        adv_status s = advio_sym_eigen(d, c, vals, vecs, msg, msg_size);
        if (s == ADV_OK) memcpy(axes, vecs, sizeof(double) * 2 * (size_t)d);
        free(c), free(vals), free(vecs);
        return s;
    }
    double *q = malloc(sizeof(double) * 4 * (size_t)d);
    if (!q) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    double *z = q + 2 * (size_t)d;
    // Deterministic start not orthogonal to any particular direction in practice.
    for (int i = 0; i < d; ++i) {
        q[i] = 1.0 + 0.5 * sin(1.0 + i);
        q[d + i] = cos(0.7 * i + 0.3);
    }
    orthonormalise2(q, d);
    for (int it = 0; it < 500; ++it) {
        cov_apply(x, n, d, mean, q, z);
        if (!orthonormalise2(z, d)) break; // rank < 2: keep the current basis
        // Converged when the new basis spans the old one: |cos| of both principal angles ~ 1.
        double a00 = 0, a01 = 0, a10 = 0, a11 = 0;
        for (int i = 0; i < d; ++i) {
            a00 += q[i] * z[i], a01 += q[i] * z[d + i];
            a10 += q[d + i] * z[i], a11 += q[d + i] * z[d + i];
        }
        memcpy(q, z, sizeof(double) * 2 * (size_t)d);
        if (fabs(fabs(a00 * a11 - a01 * a10) - 1) < 1e-12) break;
    }
    // Rayleigh-Ritz inside the converged plane orders the two axes by variance.
    cov_apply(x, n, d, mean, q, z);
    double b[4] = {0, 0, 0, 0}, vals[2], vecs[4];
    for (int i = 0; i < d; ++i) {
        b[0] += q[i] * z[i], b[1] += q[i] * z[d + i];
        b[2] += q[d + i] * z[i], b[3] += q[d + i] * z[d + i];
    }
    b[1] = b[2] = 0.5 * (b[1] + b[2]);
    advio_sym_eigen(2, b, vals, vecs, NULL, 0);
    for (int k = 0; k < 2; ++k) {
        int big = 0;
        for (int i = 0; i < d; ++i) {
            axes[(size_t)k * d + i] = vecs[2 * k] * q[i] + vecs[2 * k + 1] * q[d + i];
            if (fabs(axes[(size_t)k * d + i]) > fabs(axes[(size_t)k * d + big])) big = i;
        }
        if (axes[(size_t)k * d + big] < 0)
            for (int i = 0; i < d; ++i) axes[(size_t)k * d + i] = -axes[(size_t)k * d + i];
    }
    free(q);
    return ADV_OK;
}

/* ---- drawing ---- */

typedef struct rgb {
    uint8_t r, g, b;
} rgb;

static const rgb color_data = {31, 119, 180};   // blue
static const rgb color_sample = {214, 39, 40};  // red
static const rgb color_axis = {205, 205, 205};  // light gray

static void blend(advio_image *img, int x, int y, rgb c, double alpha) {
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
    uint8_t *p = img->pixels + ((size_t)y * img->width + x) * 3;
    p[0] = (uint8_t)lround(p[0] * (1 - alpha) + c.r * alpha);
    p[1] = (uint8_t)lround(p[1] * (1 - alpha) + c.g * alpha);
    p[2] = (uint8_t)lround(p[2] * (1 - alpha) + c.b * alpha);
}

static void square(advio_image *img, double fx, double fy, int size, rgb c, double alpha) {
    int x0 = (int)floor(fx - (size - 1) / 2.0), y0 = (int)floor(fy - (size - 1) / 2.0);
    for (int dy = 0; dy < size; ++dy)
        for (int dx = 0; dx < size; ++dx) blend(img, x0 + dx, y0 + dy, c, alpha);
}

/* Histograms of data and samples for d = 1. */
static void render_hist(const double *data, int64_t nd, const double *samples, int64_t ns,
                        double lo, double hi, advio_image *img) {
    int bins = img->width / 4 > 1 ? img->width / 4 : 1;
    double *h = calloc(2 * (size_t)bins, sizeof *h);
    if (!h) return;
    const double *src[2] = {data, samples};
    int64_t cnt[2] = {nd, ns};
    double peak[2] = {0, 0};
    for (int s = 0; s < 2; ++s) {
        for (int64_t k = 0; k < cnt[s]; ++k) {
            int b = (int)floor((src[s][k] - lo) / (hi - lo) * bins);
            if (b >= 0 && b < bins) h[s * bins + b] += 1;
        }
        for (int b = 0; b < bins; ++b) peak[s] = fmax(peak[s], h[s * bins + b]);
    }
    // Both histograms are drawn as densities on the same scale (each normalised by its count).
    double top = 0;
    for (int s = 0; s < 2; ++s)
        if (cnt[s]) top = fmax(top, peak[s] / (double)cnt[s]);
    int base = img->height - 10, span = img->height - 20;
    for (int s = 0; s < 2; ++s) {
        if (!cnt[s] || top == 0) continue;
        for (int b = 0; b < bins; ++b) {
            int bar = (int)lround(h[s * bins + b] / (double)cnt[s] / top * span);
            for (int y = base - bar; y < base; ++y)
                for (int x = b * img->width / bins; x < (b + 1) * img->width / bins; ++x)
                    blend(img, x, y, s ? color_sample : color_data, 0.5);
        }
    }
    for (int x = 0; x < img->width; ++x) blend(img, x, base, color_axis, 1);
    free(h);
}

adv_status advio_render_scatter(const double *data, int64_t n_data, const double *samples,
                                int64_t n_samples, int d, int width, int height,
                                advio_image *out, char *msg, size_t msg_size) {
    if (d < 1) return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "d = %d", d);
    if (n_data < 0 || n_samples < 0 || (n_data && !data) || (n_samples && !samples))
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_VALUE, "bad point sets");
    adv_status s = advio_image_alloc(out, width, height, 3, 255, msg, msg_size);
    if (s != ADV_OK) return s;
    int64_t total = n_data + n_samples;
    int proj_dims = d == 1 ? 1 : 2;
    double *pc = malloc(sizeof(double) * (size_t)(total ? total : 1) * (size_t)proj_dims);
    double *mean = NULL, *axes = NULL;
    if (!pc) goto oom;
    // Project every point to the plane (or line) that is drawn.
    if (d > 2) {
        mean = malloc(sizeof(double) * (size_t)d);
        axes = malloc(sizeof(double) * 2 * (size_t)d);
        if (!mean || !axes) goto oom;
        const double *basis = n_data ? data : samples;
        int64_t nb = n_data ? n_data : n_samples;
        if (nb == 0) {
            memset(mean, 0, sizeof(double) * (size_t)d);
            memset(axes, 0, sizeof(double) * 2 * (size_t)d);
            axes[0] = axes[d + 1] = 1;
        } else if ((s = advio_pca2(basis, nb, d, mean, axes, msg, msg_size)) != ADV_OK) {
            goto fail;
        }
    }
    for (int64_t k = 0; k < total; ++k) {
        const double *p = k < n_data ? data + (size_t)k * d : samples + (size_t)(k - n_data) * d;
        if (d <= 2) {
            for (int j = 0; j < proj_dims; ++j) pc[k * proj_dims + j] = p[j];
        } else {
            for (int j = 0; j < 2; ++j) {
                double acc = 0;
                for (int i = 0; i < d; ++i) acc += (p[i] - mean[i]) * axes[(size_t)j * d + i];
                pc[k * 2 + j] = acc;
            }
        }
    }
    // The view: the bounding box of the data (of the samples when there are no data).
    double lo[2] = {-1, -1}, hi[2] = {1, 1};
    {
        int64_t last = n_data ? n_data : total;
        int any = 0;
        for (int64_t k = 0; k < last; ++k)
            for (int j = 0; j < proj_dims; ++j) {
                double v = pc[k * proj_dims + j];
                if (!isfinite(v)) continue;
                if (!any || v < lo[j]) lo[j] = v;
                if (!any || v > hi[j]) hi[j] = v;
                if (j == proj_dims - 1) any = 1;
            }
        for (int j = 0; j < proj_dims; ++j) {
            double r = hi[j] - lo[j];
            if (!(r > 0)) r = fmax(fabs(lo[j]), 1.0);
            lo[j] -= 0.05 * r;
            hi[j] += 0.05 * r;
        }
    }
    if (d == 1) {
        render_hist(pc, n_data, pc + n_data, n_samples, lo[0], hi[0], out);
    } else {
        const int pad = 10;
        double scale = fmin((width - 2 * pad) / (hi[0] - lo[0]), (height - 2 * pad) / (hi[1] - lo[1]));
        double cx = 0.5 * (lo[0] + hi[0]), cy = 0.5 * (lo[1] + hi[1]);
        // Axis lines through the origin when it is in view.
        int ox = (int)lround(width / 2.0 + (0 - cx) * scale), oy = (int)lround(height / 2.0 - (0 - cy) * scale);
        if (ox >= 0 && ox < width)
            for (int y = 0; y < height; ++y) blend(out, ox, y, color_axis, 1);
        if (oy >= 0 && oy < height)
            for (int x = 0; x < width; ++x) blend(out, x, oy, color_axis, 1);
        for (int64_t k = 0; k < total; ++k) {
            double x = pc[2 * k], y = pc[2 * k + 1];
            if (!isfinite(x) || !isfinite(y)) continue;
            double fx = width / 2.0 + (x - cx) * scale, fy = height / 2.0 - (y - cy) * scale;
            if (fx < -4 || fy < -4 || fx > width + 4 || fy > height + 4) continue;
            // Data as wide pale halos, samples as small solid dots: a sample sitting on a data
            // point shows as a red dot inside a blue halo, a stray sample as a bare red dot.
            if (k < n_data)
                square(out, fx, fy, 5, color_data, 0.35);
            else
                square(out, fx, fy, 2, color_sample, 0.7);
        }
    }
    free(pc), free(mean), free(axes);
    return ADV_OK;
oom:
    s = advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
fail:
    free(pc), free(mean), free(axes);
    advio_image_free(out);
    return s;
}

/* Border between tiles and around the grid, in pixels. */
#define TILE_PAD 2

int64_t advio_tiles_fit(int64_t count, int th, int tw, int scale, int *cols) {
    const int64_t cell_w = (int64_t)tw * scale + TILE_PAD, cell_h = (int64_t)th * scale + TILE_PAD;
    const int64_t room = ADVIO_IMAGE_MAX_SIDE - TILE_PAD;
    int64_t c = *cols < count ? *cols : count, r_max = room / cell_h;
    if (c > room / cell_w) c = room / cell_w;
    if (c < 1 || r_max < 1 || count < 1) return 0;
    int64_t r = (count + c - 1) / c;
    if (r > r_max) r = r_max;
    // The pixel count bounds the area: fewer rows first, then fewer columns (one row).
    while (r > 1 && (c * cell_w + TILE_PAD) * (r * cell_h + TILE_PAD) > ADVIO_IMAGE_MAX_PIXELS) --r;
    while (c > 1 && (c * cell_w + TILE_PAD) * (r * cell_h + TILE_PAD) > ADVIO_IMAGE_MAX_PIXELS) --c;
    if ((c * cell_w + TILE_PAD) * (r * cell_h + TILE_PAD) > ADVIO_IMAGE_MAX_PIXELS) return 0;
    *cols = (int)c;
    return r * c < count ? r * c : count;
}

adv_status advio_render_tiles(const double *tiles, int64_t count, int th, int tw, int cols,
                              double lo, double hi, int scale, advio_image *out, char *msg,
                              size_t msg_size) {
    memset(out, 0, sizeof *out);
    if (count < 1 || th < 1 || tw < 1 || cols < 1 || scale < 1 || !tiles)
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "bad tile grid (count %lld, tile %dx%d, cols %d)",
                          (long long)count, th, tw, cols);
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi))
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_VALUE, "bad value range [%g, %g]", lo, hi);
    const int pad = TILE_PAD;
    int64_t rows = (count + cols - 1) / cols;
    if (cols > count) cols = (int)count;
    int64_t w = (int64_t)cols * ((int64_t)tw * scale + pad) + pad;
    int64_t h = rows * ((int64_t)th * scale + pad) + pad;
    if (w > ADVIO_IMAGE_MAX_SIDE || h > ADVIO_IMAGE_MAX_SIDE)
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "tile grid too large (%lldx%lld pixels)",
                          (long long)w, (long long)h);
    adv_status s = advio_image_alloc(out, (int)w, (int)h, 1, 128, msg, msg_size);
    if (s != ADV_OK) return s;
    for (int64_t t = 0; t < count; ++t) {
        int64_t gx = pad + (t % cols) * ((int64_t)tw * scale + pad);
        int64_t gy = pad + (t / cols) * ((int64_t)th * scale + pad);
        const double *tile = tiles + (size_t)t * (size_t)th * (size_t)tw;
        for (int i = 0; i < th; ++i)
            for (int j = 0; j < tw; ++j) {
                double v = (tile[(size_t)i * tw + j] - lo) / (hi - lo);
                v = isfinite(v) ? fmin(fmax(v, 0), 1) : 0;
                uint8_t g = (uint8_t)lround(255 * v);
                for (int a = 0; a < scale; ++a)
                    memset(out->pixels + (size_t)(gy + (int64_t)i * scale + a) * out->width + gx +
                               (int64_t)j * scale,
                           g, (size_t)scale);
            }
    }
    return ADV_OK;
}
