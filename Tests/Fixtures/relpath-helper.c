/* Makes syscalls with relative paths, as a shell or a build tool does: chdir into DIR, then
 * openat/mkdirat/renameat/unlinkat relative to the cwd and to a directory fd, fchdir into a
 * subdirectory and unlinkat from there. Prints each result, one line each: "NAME RESULT".
 * PathResolutionTests (Tests/VigilSensorsTests) traces it and compares the resolved paths.
 * Usage: relpath-helper DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixture.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (check("chdir", SC(SYS_chdir, argv[1])) != 0)
        return 1;
    check("mkdirat", SC(SYS_mkdirat, AT_FDCWD, "sub", 0755));
    long dir = check("openat-dir", SC(SYS_openat, AT_FDCWD, "./sub/../sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    long fd = check("openat-dirfd", SC(SYS_openat, dir, "made", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    check("close", SC(SYS_close, fd));
    check("renameat", SC(SYS_renameat, dir, "made", AT_FDCWD, "moved"));
    check("unlinkat-cwd", SC(SYS_unlinkat, AT_FDCWD, "moved", 0));
    check("fchdir", SC(SYS_fchdir, dir));
    long again = check("openat-after-fchdir", SC(SYS_openat, AT_FDCWD, "again", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    check("close", SC(SYS_close, again));
    check("unlinkat-after-fchdir", SC(SYS_unlinkat, AT_FDCWD, "again", 0));
    check("chdir-up", SC(SYS_chdir, ".."));
    check("unlinkat-dir", SC(SYS_unlinkat, AT_FDCWD, "sub", 0x200 /* AT_REMOVEDIR */));
    check("close", SC(SYS_close, dir));
    return 0;
}
