/* bench/sysloop.c: the syscall loops of scripts/bench-syscalls.sh.
 *
 *   sysloop getpid|mixed PATH ITERATIONS [SLICES [WARMUP_MS]]
 *
 * getpid: each step is one getpid syscall. mixed: each step is openat(PATH), fstat, read of 64
 * bytes, write of them to /dev/null, close: five syscalls. Every call goes through syscall(2), so
 * the kernel sees exactly these syscalls (glibc's fstat would be newfstatat). The result line's
 * `steps` times the syscalls per step is what a tracer should have reported of them. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "loop.h"

static const char *path;
static int devnull;

static void getpid_step(void) { syscall(SYS_getpid); }

static void mixed_step(void)
{
    char buf[64];
    struct stat st;
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    syscall(SYS_fstat, fd, &st);
    long n = syscall(SYS_read, fd, buf, sizeof buf);
    syscall(SYS_write, devnull, buf, n > 0 ? n : 0);
    syscall(SYS_close, fd);
}

int main(int argc, char **argv)
{
    long iterations;
    int slices;
    double warmup_ms;
    if (argc < 3) {
        fprintf(stderr, "usage: %s getpid|mixed PATH ITERATIONS [SLICES [WARMUP_MS]]\n", argv[0]);
        return 2;
    }
    parse_args(argc - 1, argv + 1, &iterations, &slices, &warmup_ms);
    path = argv[2];
    devnull = open("/dev/null", O_WRONLY);
    run_loop(strcmp(argv[1], "mixed") == 0 ? mixed_step : getpid_step, warmup_ms, iterations, slices);
    return 0;
}
