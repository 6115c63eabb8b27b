/* Shared by the benchmark loops in bench/: time ITERATIONS calls of one step in SLICES equal
 * slices (after a short untimed warm-up) and print the result on one line:
 *
 *   ns_per_iter=<median over slices> mean_ns=<whole run> iterations=<n> slices=<k> min_ns=<..> max_ns=<..>
 *
 * The median of the slices keeps a run's figure honest on a shared VM: a slice interrupted by
 * another process does not move it. Compiled by scripts/bench-sensors.sh with plain cc. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs step() `warmup` times untimed, then `iterations` times in `slices` timed slices. */
static void run_loop(void (*step)(void), long warmup, long iterations, int slices)
{
    if (slices < 1)
        slices = 1;
    long per = iterations / slices;
    if (per < 1)
        per = 1;
    double *ns = calloc((size_t)slices, sizeof(double));
    if (!ns) {
        perror("calloc");
        exit(1);
    }
    for (long i = 0; i < warmup; i++)
        step();
    double start = now_ns();
    for (int s = 0; s < slices; s++) {
        double t0 = now_ns();
        for (long i = 0; i < per; i++)
            step();
        ns[s] = (now_ns() - t0) / (double)per;
    }
    double total = now_ns() - start;
    qsort(ns, (size_t)slices, sizeof(double), cmp_double);
    double median = slices % 2 ? ns[slices / 2] : (ns[slices / 2 - 1] + ns[slices / 2]) / 2;
    printf("ns_per_iter=%.0f mean_ns=%.0f iterations=%ld slices=%d min_ns=%.0f max_ns=%.0f\n",
           median, total / (double)(per * slices), per * slices, slices, ns[0], ns[slices - 1]);
    free(ns);
}
