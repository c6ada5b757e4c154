/* Files the library writes itself (sampler and Benamou-Brenier checkpoints): written to a
 * hidden temporary file in the target's directory and renamed over the target, so that a
 * reader never sees half a file and a failed write leaves the old one. It gets the usual
 * permissions (0666 less the umask, as fopen would give). The temporary name
 * does not grow with the target's (any name the file system takes works), and an existing
 * target that is not a regular file (a device such as /dev/null, a FIFO) is refused: the
 * rename would replace it. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Creates dir + ".advect-XXXXXX" exclusively with mode 0666, so that the process' umask
 * applies as with fopen (mkstemp's 0600 would make checkpoints unreadable to a group, and a
 * library must not call umask(), which is process-wide). Returns the descriptor or -1. */
static int create_temporary(char *name, size_t dir_len) {
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 16) ^
                 (uint64_t)(uintptr_t)name;
    for (int attempt = 0; attempt < 100; ++attempt) {
        x = x * 6364136223846793005ull + 1442695040888963407ull; // LCG step per attempt
        uint64_t r = x >> 16;
        for (int k = 0; k < 6; ++k, r /= 62) name[dir_len + 8 + k] = digits[r % 62];
        const int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

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
    const int fd = create_temporary(file->tmp, dir_len);
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
