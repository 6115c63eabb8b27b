/* bench/openclose.c: the open()+close() loop of scripts/bench-sensors.sh.
 *
 *   openclose PATH ITERATIONS [SLICES]
 *
 * Each iteration opens PATH read-only (glibc's open() is the openat syscall) and closes it. PATH
 * should be absolute and unique to the run, so a tracer's output can be searched for it. */
#include <fcntl.h>
#include <unistd.h>
#include "loop.h"

static const char *path;

static void step(void)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PATH ITERATIONS [SLICES]\n", argv[0]);
        return 2;
    }
    path = argv[1];
    long n = atol(argv[2]);
    int slices = argc > 3 ? atoi(argv[3]) : 20;
    run_loop(step, n / 20, n, slices);
    return 0;
}
