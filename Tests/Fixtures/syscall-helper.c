/* Makes syscalls of several categories with known arguments, through syscall(2) (no libc
 * substitutions), and prints what each returned, one line each: "NAME RESULT [MORE]". The
 * syscalls sensor's tests (Tests/VigilSensorsTests/SyscallSensorTests.swift) trace it and compare.
 * Usage: syscall-helper PORT TMPDIR   (PORT: a TCP port on 127.0.0.1 nothing listens on) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

#include "fixture.h"

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int port = atoi(argv[1]);
    char path[512], renamed[512];
    snprintf(path, sizeof path, "%s/helper file", argv[2]);
    snprintf(renamed, sizeof renamed, "%s/renamed", argv[2]);

    /* fs */
    long fd = SC(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY | O_CLOEXEC);
    printf("openat %ld\n", fd);
    char buf[16] = {0};
    long n = SC(SYS_read, fd, buf, 5);
    printf("read %ld\n", n);
    check("close", SC(SYS_close, fd));
    printf("openat-missing %ld\n", SC(SYS_openat, AT_FDCWD, "/nonexistent-vigil-helper", O_RDONLY));
    long out = SC(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    printf("openat-create %ld\n", out);
    check("write", SC(SYS_write, out, "hello vigil", 11));
    check("close", SC(SYS_close, out));
    check("renameat2", SC(SYS_renameat2, AT_FDCWD, path, AT_FDCWD, renamed, 0));
    check("unlinkat", SC(SYS_unlinkat, AT_FDCWD, renamed, 0));
    check("unlinkat-missing", SC(SYS_unlinkat, AT_FDCWD, renamed, 0));

    /* net */
    long s = SC(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    printf("socket %ld\n", s);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    check("connect", SC(SYS_connect, s, &in, sizeof in));
    check("close", SC(SYS_close, s));
    long u = SC(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
    printf("socket-unix %ld\n", u);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, "/nonexistent-vigil.sock");
    check("connect-unix", SC(SYS_connect, u, &un, sizeof un));
    check("close", SC(SYS_close, u));

    /* ipc */
    int fds[2] = {-1, -1};
    long r = SC(SYS_pipe2, fds, O_CLOEXEC);
    printf("pipe2 %ld %d %d\n", r, fds[0], fds[1]);

    /* mem */
    long addr = SC(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap %ld\n", addr);
    syscall(SYS_munmap, addr, 4096); /* not asked for */

    /* proc, signal, time */
    check("kill", SC(SYS_kill, getpid(), 0));
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
    check("nanosleep", SC(SYS_nanosleep, &ts, NULL));
    for (int i = 0; i < 1000; i++)
        syscall(SYS_getpid); /* not asked for */
    printf("pid %d\n", getpid());
    return 0;
}
