/* What the syscall-making test helpers (syscall-, relpath-, fdtable-helper.c) share: a raw
 * syscall's result and one printed line per call. */
#ifndef VIGIL_TEST_FIXTURE_H
#define VIGIL_TEST_FIXTURE_H
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

/* syscall(2)'s result as the kernel returned it: -errno on failure. */
#define SC(...) ({ long r_ = syscall(__VA_ARGS__); r_ < 0 ? -errno : r_; })

/* Prints "NAME RESULT" and returns RESULT. */
static inline long check(const char *name, long r)
{
    printf("%s %ld\n", name, r);
    return r;
}
#endif
