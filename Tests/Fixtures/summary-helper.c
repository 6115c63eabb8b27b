/* Makes a known number of syscalls for `vigil trace --summary` (Tests/VigilCLITests/CLITests.swift):
 * a forked child calls getpid() exactly N times, then the parent opens a missing file M times
 * (each fails with ENOENT), waits for the child and exits with status 3.
 * Usage: summary-helper N M MISSING_PATH   (build it static: no loader opens) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    long n = atol(argv[1]), m = atol(argv[2]);
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        for (long i = 0; i < n; i++)
            syscall(SYS_getpid);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    for (long i = 0; i < m; i++)
        syscall(SYS_openat, AT_FDCWD, argv[3], O_RDONLY);
    return 3;
}
