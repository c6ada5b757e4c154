/* Files the library writes itself (sampler and Benamou-Brenier checkpoints), through the
 * write-whole-or-nothing writer of atomic_file.c that the command-line tool uses too; this
 * file turns its errno results into reported adv_status values. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

adv_status advi_file_begin(adv_context *ctx, const char *path, advi_file *file) {
    unsigned mode = 0;
    const int err = advi_atomic_begin(file, path, &mode);
    if (err == ADVI_ATOMIC_NOT_REGULAR)
        return advi_fail(ctx, ADV_ERR_IO, "%s exists and is not a regular file%s", path,
                         S_ISDIR(mode) ? " (a directory)" : "");
    if (err == ADVI_ATOMIC_UNTRUSTED_LINK)
        return advi_fail(ctx, ADV_ERR_IO, "%s is a symbolic link in a sticky directory owned by "
                         "another user: not followed (protected-symlinks rule)", path);
    if (err == ENOMEM) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "temporary file name for %s", path);
    if (err) return advi_fail(ctx, ADV_ERR_IO, "cannot create a file next to %s: %s", path, strerror(err));
    return ADV_OK;
}

adv_status advi_file_commit(adv_context *ctx, advi_file *file, const char *path, int ok) {
    const int err = advi_atomic_commit(file, ok);
    if (!ok) return ADV_ERR_IO; // the caller reports its own failure
    if (err) return advi_fail(ctx, ADV_ERR_IO, "cannot write %s: %s", path, strerror(err));
    return ADV_OK;
}
