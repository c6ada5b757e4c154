/* Files the library writes itself (sampler and Benamou-Brenier checkpoints): written to a
 * hidden temporary file in the target's directory and renamed over the target, so that a
 * reader never sees half a file and a failed write leaves the old one. The temporary name
 * does not grow with the target's (any name the file system takes works), and an existing
 * target that is not a regular file (a device such as /dev/null, a FIFO) is refused: the
 * rename would replace it. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

adv_status advi_file_begin(adv_context *ctx, const char *path, advi_file *file) {
    file->fp = NULL;
    file->tmp = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return advi_fail(ctx, ADV_ERR_IO, "%s exists and is not a regular file", path);
    const char *slash = strrchr(path, '/');
    const size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    static const char name[] = ".advect-XXXXXX";
    file->tmp = malloc(dir_len + sizeof name);
    if (!file->tmp) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "temporary file name");
    memcpy(file->tmp, path, dir_len);
    memcpy(file->tmp + dir_len, name, sizeof name);
    const int fd = mkstemp(file->tmp);
    if (fd >= 0) file->fp = fdopen(fd, "wb");
    if (!file->fp) {
        const int err = errno;
        if (fd >= 0) {
            close(fd);
            remove(file->tmp);
        }
        free(file->tmp);
        file->tmp = NULL;
        return advi_fail(ctx, ADV_ERR_IO, "cannot create a file next to %s: %s", path,
                         strerror(err));
    }
    return ADV_OK;
}

adv_status advi_file_commit(adv_context *ctx, advi_file *file, const char *path, int ok) {
    if (!file->fp) return ADV_ERR_IO; // begin failed and reported
    int err = ok ? 0 : EIO;
    if (ok && fflush(file->fp) != 0) err = errno;
    if (ok && !err && fsync(fileno(file->fp)) != 0) err = errno;
    if (fclose(file->fp) != 0 && !err) err = errno;
    file->fp = NULL;
    if (ok && !err && rename(file->tmp, path) != 0) err = errno;
    if (!ok || err) remove(file->tmp);
    free(file->tmp);
    file->tmp = NULL;
    if (!ok) return ADV_ERR_IO; // the caller reports its own failure
    if (err) return advi_fail(ctx, ADV_ERR_IO, "cannot write %s: %s", path, strerror(err));
    return ADV_OK;
}
