/* bench/sysloop.c: the syscall loops of scripts/bench-syscalls.sh.
 *
 *   sysloop getpid|mixed|udp|tcp|dns PATH ITERATIONS [SLICES [WARMUP_MS]]
 *
 * getpid: each step is one getpid syscall. mixed: each step is openat(PATH), fstat, read of 64
 * bytes, write of them to /dev/null, close: five syscalls. udp: each step is a sendto of 32
 * bytes from one loopback UDP socket to another and the recvfrom that receives them (two
 * syscalls; neither socket has port 53, so a DNS-only capture drops the recvfrom in the kernel).
 * tcp: each step is one whole loopback TCP connection: socket, connect to a listener of this
 * process, accept4, close of the accepted socket, close of the client (five syscalls). The
 * listener has SO_LINGER 0, which its accepted sockets inherit: their close resets the
 * connection, so no step leaves a TIME_WAIT socket behind and the ephemeral ports never run out.
 * dns: each step is one DNS lookup over loopback UDP: a resolver's socket sends an A query for
 * bench.vigil.test to a server socket bound to 127.0.53.1:53, which receives it, sends its answer
 * (127.0.53.7) back, and the resolver receives it with its source address, as musl's resolver
 * does: sendto, recvfrom, sendto, recvfrom (four syscalls; two DNS messages received, the query
 * and the answer).
 * Every call goes through syscall(2), so
 * the kernel sees exactly these syscalls (glibc's fstat would be newfstatat). The result line's
 * `steps` times the syscalls per step is what a tracer should have reported of them. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "loop.h"

static const char *path;
static int devnull;
static int sender, receiver;
static struct sockaddr_in receiver_address;

static void getpid_step(void) { syscall(SYS_getpid); }

static void mixed_step(void)
{
    char buf[64];
    struct stat st;
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    syscall(SYS_fstat, fd, &st);
    long n = syscall(SYS_read, fd, buf, sizeof buf);
    syscall(SYS_write, devnull, buf, n > 0 ? n : 0);
    syscall(SYS_close, fd);
}

static void udp_step(void)
{
    char buf[32] = "vigil";
    syscall(SYS_sendto, sender, buf, sizeof buf, 0, &receiver_address, sizeof receiver_address);
    syscall(SYS_recvfrom, receiver, buf, sizeof buf, 0, NULL, NULL);
}

/* A DNS query (id 0x1234, recursion desired) for bench.vigil.test A, and its answer. */
static const unsigned char dns_query[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                          5, 'b', 'e', 'n', 'c', 'h', 5, 'v', 'i', 'g', 'i', 'l', 4, 't', 'e', 's', 't', 0,
                                          0, 1, 0, 1};
static unsigned char dns_answer[sizeof dns_query + 16];
static int dns_server, dns_resolver;
static struct sockaddr_in dns_server_address, dns_resolver_address;

static void dns_step(void)
{
    unsigned char buf[512];
    syscall(SYS_sendto, dns_resolver, dns_query, sizeof dns_query, 0, &dns_server_address, sizeof dns_server_address);
    syscall(SYS_recvfrom, dns_server, buf, sizeof buf, 0, NULL, NULL);
    syscall(SYS_sendto, dns_server, dns_answer, sizeof dns_answer, 0, &dns_resolver_address, sizeof dns_resolver_address);
    struct sockaddr_in from;
    socklen_t from_length = sizeof from;
    syscall(SYS_recvfrom, dns_resolver, buf, sizeof buf, 0, &from, &from_length);
}

/* The server on 127.0.53.1:53 (root: a port below 1024), the resolver on a port the kernel chose,
 * and the answer: the query with the response flags and one A record, 127.0.53.7 (TTL 1 s). */
static void dns_setup(void)
{
    static const unsigned char record[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 127, 0, 53, 7};
    memcpy(dns_answer, dns_query, sizeof dns_query);
    dns_answer[2] = 0x81;
    dns_answer[3] = 0x80;
    dns_answer[7] = 1;
    memcpy(dns_answer + sizeof dns_query, record, sizeof record);
    socklen_t length = sizeof dns_resolver_address;
    dns_server_address.sin_family = AF_INET;
    dns_server_address.sin_port = htons(53);
    dns_server_address.sin_addr.s_addr = htonl(0x7f003501); /* 127.0.53.1 */
    dns_resolver_address.sin_family = AF_INET;
    dns_resolver_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dns_server = socket(AF_INET, SOCK_DGRAM, 0);
    dns_resolver = socket(AF_INET, SOCK_DGRAM, 0);
    if (dns_server < 0 || dns_resolver < 0
        || bind(dns_server, (struct sockaddr *)&dns_server_address, sizeof dns_server_address)
        || bind(dns_resolver, (struct sockaddr *)&dns_resolver_address, sizeof dns_resolver_address)
        || getsockname(dns_resolver, (struct sockaddr *)&dns_resolver_address, &length)) {
        perror("dns sockets (127.0.53.1:53 needs root)");
        exit(1);
    }
}

static int listener;
static struct sockaddr_in listener_address;

static void tcp_step(void)
{
    long client = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (client < 0 || syscall(SYS_connect, client, &listener_address, sizeof listener_address)) {
        perror("tcp connect");
        exit(1);
    }
    long accepted = syscall(SYS_accept4, listener, NULL, NULL, 0);
    if (accepted < 0) {
        perror("tcp accept4");
        exit(1);
    }
    syscall(SYS_close, accepted);
    syscall(SYS_close, client);
}

/* A TCP listener on 127.0.0.1, on a port the kernel chose, whose accepted sockets reset on close. */
static void tcp_setup(void)
{
    socklen_t length = sizeof listener_address;
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    listener_address.sin_family = AF_INET;
    listener_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_LINGER, &reset, sizeof reset)
        || bind(listener, (struct sockaddr *)&listener_address, sizeof listener_address) || listen(listener, 128)
        || getsockname(listener, (struct sockaddr *)&listener_address, &length)) {
        perror("tcp listener");
        exit(1);
    }
}

/* Two UDP sockets on 127.0.0.1, the receiver on a port the kernel chose. */
static void udp_setup(void)
{
    socklen_t length = sizeof receiver_address;
    receiver_address.sin_family = AF_INET;
    receiver_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sender = socket(AF_INET, SOCK_DGRAM, 0);
    receiver = socket(AF_INET, SOCK_DGRAM, 0);
    if (sender < 0 || receiver < 0 || bind(receiver, (struct sockaddr *)&receiver_address, sizeof receiver_address)
        || getsockname(receiver, (struct sockaddr *)&receiver_address, &length)) {
        perror("udp sockets");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    long iterations;
    int slices;
    double warmup_ms;
    if (argc < 3) {
        fprintf(stderr, "usage: %s getpid|mixed|udp|tcp|dns PATH ITERATIONS [SLICES [WARMUP_MS]]\n", argv[0]);
        return 2;
    }
    parse_args(argc - 1, argv + 1, &iterations, &slices, &warmup_ms);
    path = argv[2];
    devnull = open("/dev/null", O_WRONLY);
    void (*step)(void) = getpid_step;
    if (strcmp(argv[1], "mixed") == 0)
        step = mixed_step;
    if (strcmp(argv[1], "udp") == 0) {
        udp_setup();
        step = udp_step;
    }
    if (strcmp(argv[1], "tcp") == 0) {
        tcp_setup();
        step = tcp_step;
    }
    if (strcmp(argv[1], "dns") == 0) {
        dns_setup();
        step = dns_step;
    }
    run_loop(step, warmup_ms, iterations, slices);
    return 0;
}
