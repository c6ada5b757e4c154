/* Files written whole or not at all, shared by the library's checkpoints (host/files.c) and
 * the command-line tool's outputs (host/io): the data goes to a hidden temporary file beside
 * the target, is flushed to disk and renamed over the target, so a reader never sees half a
 * file and a failed write leaves the old one; a replaced file keeps its permissions, a new one
 * gets 0666 less the umask. Symbolic links are followed (the file they name is replaced, not
 * the link), except where the kernel's protected-symlinks rule would refuse them (a link in a
 * sticky world-writable directory such as /tmp owned by neither us nor the directory's
 * owner: EACCES), and a target that exists but is not a regular file (a directory, a device
 * such as /dev/null, a FIFO) is refused: the rename would replace it.
 * Plain C and errno codes only, so that both the library and the tool can compile it. */
#ifndef ADVECT_HOST_ATOMIC_FILE_H
#define ADVECT_HOST_ATOMIC_FILE_H

#include <stdio.h>

typedef struct advi_atomic_file {
    FILE *fp;     /* the temporary file, open for writing between begin and commit */
    char *target; /* what commit replaces: the given path with symbolic links followed */
    char *tmp;    /* the temporary's name */
} advi_atomic_file;

/* begin's result when the target exists and is not a regular file (st_mode in *mode). */
#define ADVI_ATOMIC_NOT_REGULAR (-1)
/* begin's result when path is a symbolic link it will not follow (protected-symlinks rule). */
#define ADVI_ATOMIC_UNTRUSTED_LINK (-2)

/* Opens the temporary. Returns 0, ADVI_ATOMIC_NOT_REGULAR (and the target's st_mode in
 * *mode when mode is non-NULL), ADVI_ATOMIC_UNTRUSTED_LINK, or an errno value (ELOOP for a
 * loop of links, ENOMEM);
 * on failure nothing is left open or allocated. */
int advi_atomic_begin(advi_atomic_file *f, const char *path, unsigned *mode);
/* When ok: flushes the file to disk and renames it over the target. Otherwise (or when that
 * fails) removes the temporary. Always releases f. Returns 0 or the errno of the failing
 * step (EIO when !ok). */
int advi_atomic_commit(advi_atomic_file *f, int ok);

/* The path that writing to `path` reaches: symbolic links of its last component followed
 * (relative targets against the link's directory). A malloc'ed string, or NULL with errno
 * set (ELOOP after 40 links, EACCES for an untrusted link as above, ENOMEM). */
char *advi_follow_links(const char *path);

#endif
