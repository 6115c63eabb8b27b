/* bench/openclose.c: the open()+close() loop of scripts/bench-sensors.sh.
 *
 *   openclose PATH ITERATIONS [SLICES [WARMUP_MS]]
 *
 * Each step opens PATH read-only (glibc's open() is the openat syscall) and closes it. The script
 * passes an absolute path unique to the run, so a tracer's output can be searched for it. */
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
    long iterations;
    int slices;
    double warmup_ms;
    parse_args(argc, argv, &iterations, &slices, &warmup_ms);
    path = argv[1];
    run_loop(step, warmup_ms, iterations, slices);
    return 0;
}
