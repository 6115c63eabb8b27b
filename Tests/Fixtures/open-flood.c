/* open-flood PATH SECONDS: opens and closes PATH as fast as one CPU can, for SECONDS seconds
 * (or until killed); prints the number of opens. TamperTests floods the daemon's ring reader
 * with it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: open-flood PATH SECONDS\n");
        return 2;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long done = 0;
    for (;;) {
        for (int i = 0; i < 1000; i++, done++) {
            int fd = open(argv[1], O_RDONLY);
            if (fd < 0) {
                perror(argv[1]);
                return 1;
            }
            close(fd);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= atol(argv[2])) break;
    }
    printf("%ld\n", done);
    return 0;
}
