/* bench/openrate.c: a steady load of open events for scripts/bench-daemon.sh.
 *
 *   openrate PATH RATE SECONDS
 *
 * Opens and closes PATH RATE times per second for SECONDS seconds, in bursts every millisecond
 * (RATE/1000 opens per burst, then sleep until the next millisecond boundary). Prints on stdout
 * the number of opens done and the rate achieved, which is lower than RATE when one CPU cannot
 * do more (the daemon runs on the same machine). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: openrate PATH RATE SECONDS\n");
        return 2;
    }
    const char *path = argv[1];
    long rate = atol(argv[2]);
    double seconds = atof(argv[3]);
    long per_tick = rate / 1000 > 0 ? rate / 1000 : 1;
    double start = now(), next = start;
    long done = 0;
    while (now() - start < seconds) {
        for (long i = 0; i < per_tick; i++) {
            int fd = open(path, O_RDONLY);
            if (fd < 0) {
                perror(path);
                return 1;
            }
            close(fd);
        }
        done += per_tick;
        next += 0.001;
        double wait = next - now();
        if (wait > 0) {
            struct timespec ts = {0, (long)(wait * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    double elapsed = now() - start;
    printf("%ld %.0f\n", done, done / elapsed);
    return 0;
}
