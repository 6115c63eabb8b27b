/* Shared by the benchmark loops in bench/ (compiled by scripts/bench-sensors.sh with plain cc):
 * run one step untimed for a warm-up period, then ITERATIONS times in SLICES equal timed slices,
 * and print one line:
 *
 *   ns_per_iter=<median over slices> p10_ns=<10th percentile of slices> mean_ns=<whole timed
 *   part> iterations=<timed> steps=<all, warm-up included> slices=<k> min_ns=<fastest slice>
 *   max_ns=<slowest slice>
 *
 * - The warm-up is by time, not by count: after being idle this VM's vCPU runs ~1.6x slower for
 *   the first 100-250 ms of work, so a count-based warm-up of a fast loop would time that ramp.
 * - The median of the slices keeps a run's figure honest on a shared VM: a slice interrupted by
 *   another process does not move it.
 * - `steps` is what a tracer should have reported for the run (one event per step). */
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

/* Runs step() for `warmup_ms` milliseconds untimed, then `iterations` times in `slices` timed
 * slices, and prints the result line. */
static void run_loop(void (*step)(void), double warmup_ms, long iterations, int slices)
{
    long steps = 0;
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
    for (double end = now_ns() + warmup_ms * 1e6; now_ns() < end; steps++)
        step();
    double start = now_ns();
    for (int s = 0; s < slices; s++) {
        double t0 = now_ns();
        for (long i = 0; i < per; i++)
            step();
        ns[s] = (now_ns() - t0) / (double)per;
    }
    double total = now_ns() - start;
    steps += per * slices;
    qsort(ns, (size_t)slices, sizeof(double), cmp_double);
    double median = slices % 2 ? ns[slices / 2] : (ns[slices / 2 - 1] + ns[slices / 2]) / 2;
    printf("ns_per_iter=%.0f p10_ns=%.0f mean_ns=%.0f iterations=%ld steps=%ld slices=%d min_ns=%.0f max_ns=%.0f\n",
           median, ns[slices / 10], total / (double)(per * slices), per * slices, steps, slices, ns[0], ns[slices - 1]);
    free(ns);
}

/* The common command line: PROG TARGET ITERATIONS [SLICES [WARMUP_MS]]. */
static void parse_args(int argc, char **argv, long *iterations, int *slices, double *warmup_ms)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TARGET ITERATIONS [SLICES [WARMUP_MS]]\n", argv[0]);
        exit(2);
    }
    *iterations = atol(argv[2]);
    *slices = argc > 3 ? atoi(argv[3]) : 20;
    *warmup_ms = argc > 4 ? atof(argv[4]) : 200;
}
