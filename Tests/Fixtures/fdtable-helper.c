/* Walks the fd table through dup2, close_range, fork and exec: opens FILE twice (the second
 * O_CLOEXEC), dup2s the first to 50, 60 and 61, closes 60..61 with close_range, writes to 60
 * (EBADF), then forks; the child execs this program with "child KEPT CLOEXEC", which writes to
 * KEPT (inherited through exec) and to CLOEXEC (closed by exec: EBADF). Prints each result,
 * one line each: "NAME RESULT". FDTableTraceTests traces it.
 * Usage: fdtable-helper FILE */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && argv[1][0] == 'c') { /* the exec'ed child */
        check("child-write-kept", SC(SYS_write, atoi(argv[2]), "k", 1));
        check("child-write-cloexec", SC(SYS_write, atoi(argv[3]), "c", 1));
        return 0;
    }
    if (argc < 2)
        return 2;
    long kept = check("openat", SC(SYS_openat, AT_FDCWD, argv[1], O_WRONLY | O_APPEND));
    long cloexec = check("openat-cloexec", SC(SYS_openat, AT_FDCWD, argv[1], O_WRONLY | O_APPEND | O_CLOEXEC));
    check("dup2", SC(SYS_dup2, kept, 50));
    check("dup2", SC(SYS_dup2, kept, 60));
    check("dup2", SC(SYS_dup2, kept, 61));
    check("write-61", SC(SYS_write, 61, "a", 1));
    check("close_range", SC(SYS_close_range, 60, 61, 0));
    check("write-60", SC(SYS_write, 60, "b", 1));
    pid_t child = fork();
    if (child == 0) {
        char k[24], c[24];
        snprintf(k, sizeof k, "%d", 50);
        snprintf(c, sizeof c, "%ld", cloexec);
        execl(argv[0], argv[0], "child", k, c, (char *)NULL); /* the same name: the same comm */
        _exit(127);
    }
    int status = 0;
    waitpid(child, &status, 0);
    check("child", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
