/* Files written whole or not at all (see atomic_file.h): one writer for the library's
 * checkpoints and the command-line tool's outputs. */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* malloc'ed copy of the first len bytes of s, NUL-terminated (not strdup: the library's
 * allocations all go through malloc, which the fault-injection test intercepts). */
static char *copy_of(const char *s, size_t len) {
    char *c = malloc(len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

/* Whether the kernel's protected-symlinks rule would refuse to follow this link: it sits in
 * a sticky, world-writable directory (/tmp) and belongs neither to us nor to the directory's
 * owner. Links are resolved here by hand, where the kernel's check does not apply; without
 * this, a link planted at a predictable path in /tmp would make the writer replace any file
 * the user can write. */
static int untrusted_link(const char *link, const struct stat *ls) {
    const char *slash = strrchr(link, '/');
    char *dir = slash ? copy_of(link, slash == link ? 1 : (size_t)(slash - link)) : copy_of(".", 1);
    if (!dir) return 1;
    struct stat ds;
    const int bad = stat(dir, &ds) == 0 && (ds.st_mode & S_ISVTX) && (ds.st_mode & S_IWOTH) &&
                    ls->st_uid != geteuid() && ls->st_uid != ds.st_uid;
    free(dir);
    return bad;
}

char *advi_follow_links(const char *path) {
    char *p = copy_of(path, strlen(path));
    for (int hops = 0; p && hops <= 40; ++hops) {
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode)) return p;
        if (untrusted_link(p, &st)) {
            free(p);
            errno = EACCES;
            return NULL;
        }
        char target[4096];
        const ssize_t n = readlink(p, target, sizeof target - 1);
        if (n < 0) return p; // unreadable: let the open report it
        const char *slash = strrchr(p, '/');
        const size_t dir_len = target[0] != '/' && slash ? (size_t)(slash - p) + 1 : 0;
        char *next = malloc(dir_len + (size_t)n + 1);
        if (next) {
            memcpy(next, p, dir_len);
            memcpy(next + dir_len, target, (size_t)n);
            next[dir_len + (size_t)n] = '\0';
        }
        free(p);
        p = next;
    }
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    free(p);
    errno = ELOOP;
    return NULL;
}

/* The temporary's name in the target's directory (so that rename() is atomic): fixed and
 * short, so any target name the file system takes leaves room for it; the leading dot keeps
 * it out of sight. */
static const char tmp_name[] = ".advect-XXXXXX";

/* Creates dir + tmp_name exclusively with mode 0666, so that the process' umask applies as
 * with fopen (mkstemp's 0600 would make files unreadable to a group, and a library must not
 * call umask(), which is process-wide). Returns the descriptor, or -1 with errno set. */
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

static void release(advi_atomic_file *f) {
    free(f->target);
    free(f->tmp);
    f->fp = NULL;
    f->target = f->tmp = NULL;
}

int advi_atomic_begin(advi_atomic_file *f, const char *path, unsigned *mode) {
    f->fp = NULL;
    f->tmp = NULL;
    f->target = advi_follow_links(path);
    if (!f->target) return errno == EACCES ? ADVI_ATOMIC_UNTRUSTED_LINK : errno;
    struct stat st;
    const int exists = stat(f->target, &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
        if (mode) *mode = (unsigned)st.st_mode;
        release(f);
        return ADVI_ATOMIC_NOT_REGULAR;
    }
    const char *slash = strrchr(f->target, '/');
    const size_t dir_len = slash ? (size_t)(slash - f->target) + 1 : 0;
    f->tmp = malloc(dir_len + sizeof tmp_name);
    if (!f->tmp) {
        release(f);
        return ENOMEM;
    }
    memcpy(f->tmp, f->target, dir_len);
    memcpy(f->tmp + dir_len, tmp_name, sizeof tmp_name);
    const int fd = create_temporary(f->tmp, dir_len);
    // A file that is replaced keeps its permissions (a private 0600 file stays private).
    if (fd >= 0 && exists) (void)fchmod(fd, st.st_mode & 07777);
    if (fd >= 0) f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        const int err = errno;
        if (fd >= 0) {
            close(fd);
            remove(f->tmp);
        }
        release(f);
        return err ? err : EIO;
    }
    return 0;
}

int advi_atomic_commit(advi_atomic_file *f, int ok) {
    if (!f->fp) {
        release(f);
        return EBADF;
    }
    int err = ok ? 0 : EIO;
    if (!err && (fflush(f->fp) != 0 || ferror(f->fp))) err = errno ? errno : EIO;
    // EINVAL: a file system without fsync (the data is as durable as it can be there).
    if (!err && fsync(fileno(f->fp)) != 0 && errno != EINVAL) err = errno;
    if (fclose(f->fp) != 0 && !err) err = errno;
    f->fp = NULL;
    if (!err && rename(f->tmp, f->target) != 0) err = errno;
    if (err) remove(f->tmp);
    release(f);
    return err;
}
