// SPDX-License-Identifier: GPL-2.0
/* Socket tuples for the syscalls sensor: both ends of the socket an fd refers to, read from the
 * kernel's struct sock at the syscall's exit (the local end of a connect, the peer of an accept,
 * the address a bind or an autobind chose), appended to the record as struct vigil_socket_tuple
 * with VIGIL_SYSCALL_SOCKET. Which syscalls: the spec's VIGIL_SPEC_SOCKET_FD (argument 0 is the
 * fd) or VIGIL_SPEC_SOCKET_RESULT (the result is the new fd), set by userspace from the table. */
#ifndef VIGIL_SOCKET_BPF_H
#define VIGIL_SOCKET_BPF_H

#include <bpf/bpf_endian.h>

#define VIGIL_S_IFMT 00170000
#define VIGIL_S_IFSOCK 0140000
#define VIGIL_AF_UNIX 1
#define VIGIL_AF_INET 2
#define VIGIL_AF_INET6 10

VIGIL_ABI_TYPE(vigil_socket_tuple);

/* The struct sock behind fd `fd` of the current task `task` (bpf_get_current_task_btf), NULL
 * when it is no socket; *ino gets the socket's inode. Where the kernel has bpf_rdonly_cast
 * (vigil_rdonly_cast) the file is found by vigil_fd_file_typed and its socket cast typed, with
 * no helper call, and the struct sock's members are plain loads (vigil_sock_field); elsewhere
 * probe reads, about four per step. */
static __always_inline struct sock *vigil_fd_sock(struct task_struct *task, __s32 fd, __u64 *ino)
{
    if (vigil_rdonly_cast) {
        struct file *file = vigil_fd_file_typed(task, fd);
        if (!file)
            return NULL;
        struct inode *inode = file->f_inode;
        if ((inode->i_mode & VIGIL_S_IFMT) != VIGIL_S_IFSOCK)
            return NULL;
        *ino = inode->i_ino;
        struct socket *sock = bpf_rdonly_cast(file->private_data, bpf_core_type_id_kernel(struct socket));
        return sock->sk;
    }
    struct file *file = vigil_fd_file(fd);
    if (!file)
        return NULL;
    struct inode *inode = BPF_CORE_READ(file, f_inode);
    if ((BPF_CORE_READ(inode, i_mode) & VIGIL_S_IFMT) != VIGIL_S_IFSOCK)
        return NULL;
    *ino = BPF_CORE_READ(inode, i_ino);
    struct socket *sock = BPF_CORE_READ(file, private_data);
    return BPF_CORE_READ(sock, sk);
}

/* Member `field` of a struct sock vigil_fd_sock returned: a plain load where it is typed
 * (vigil_rdonly_cast), a probe read elsewhere. */
#define vigil_sock_field(sk, field) (vigil_rdonly_cast ? (sk)->field : BPF_CORE_READ((sk), field))

/* Whether a call on the socket of argument 0 is DNS traffic (VIGIL_SPEC_DNS_ONLY), at its exit:
 * either end of the IP socket has port 53, or a socket address argument (recvfrom's source,
 * sendto's destination on an unconnected socket) does. Read before anything is captured: every
 * call of a DNS-only syscall pays this (each recvfrom of the host under the default rules).
 * `task` is the current task (bpf_get_current_task_btf). */
static __always_inline bool vigil_dns_port(struct task_struct *task, const __u64 *args, const __u8 *kinds)
{
    __u64 ino = 0;
    struct sock *sk = vigil_fd_sock(task, (__s32)args[0], &ino);
    if (!sk)
        return false;
    __u16 family = vigil_sock_field(sk, __sk_common.skc_family);
    if (family != VIGIL_AF_INET && family != VIGIL_AF_INET6)
        return false;
    if (vigil_sock_field(sk, __sk_common.skc_num) == 53 || bpf_ntohs(vigil_sock_field(sk, __sk_common.skc_dport)) == 53)
        return true;
#pragma unroll
    for (int i = 0; i < VIGIL_SYSCALL_ARGS; i++) {
        bool address = kinds[i] == VIGIL_CAPTURE_SOCKADDR_ENTRY || kinds[i] == VIGIL_CAPTURE_SOCKADDR_EXIT;
        if (!address || !args[i])
            continue;
        __u16 port = 0; /* sin_port and sin6_port: both at offset 2 */
        bpf_probe_read_user(&port, sizeof(port), (const void *)(args[i] + 2));
        if (bpf_ntohs(port) == 53)
            return true;
    }
    return false;
}

/* Appends the tuple of the socket the spec names to `e` (after its data_len bytes of data) and
 * sets VIGIL_SYSCALL_SOCKET; nothing when the fd is no socket or the call made no fd. */
static __always_inline void vigil_socket_tuple(struct task_struct *task, struct vigil_syscall_event *e, __u16 spec_flags, long ret)
{
    long fd;
    if (spec_flags & VIGIL_SPEC_SOCKET_RESULT) {
        if (ret < 0)
            return;
        fd = ret;
    } else if (spec_flags & VIGIL_SPEC_SOCKET_FD) {
        fd = (int)e->args[0];
    } else {
        return;
    }
    __u64 ino = 0;
    struct sock *sk = vigil_fd_sock(task, fd, &ino);
    if (!sk)
        return;
    __u32 pos = e->data_len;
    if (pos > VIGIL_SYSCALL_DATA_MAX - sizeof(struct vigil_socket_tuple)) {
        e->flags |= VIGIL_SYSCALL_DATA_FULL;
        return;
    }
    struct vigil_socket_tuple *t = (struct vigil_socket_tuple *)(e->data + (pos & (VIGIL_SYSCALL_DATA_MAX - 1)));
    __builtin_memset(t, 0, sizeof(*t));
    __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    t->family = family;
    t->type = BPF_CORE_READ(sk, sk_type);
    t->protocol = BPF_CORE_READ(sk, sk_protocol);
    t->state = BPF_CORE_READ(sk, __sk_common.skc_state);
    t->inode = ino;
    if (family == VIGIL_AF_INET || family == VIGIL_AF_INET6) {
        t->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
        t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    }
    if (family == VIGIL_AF_INET) {
        BPF_CORE_READ_INTO((__u32 *)t->laddr, sk, __sk_common.skc_rcv_saddr);
        BPF_CORE_READ_INTO((__u32 *)t->raddr, sk, __sk_common.skc_daddr);
    } else if (family == VIGIL_AF_INET6) {
        BPF_CORE_READ_INTO((struct in6_addr *)t->laddr, sk, __sk_common.skc_v6_rcv_saddr);
        BPF_CORE_READ_INTO((struct in6_addr *)t->raddr, sk, __sk_common.skc_v6_daddr);
    } else if (family == VIGIL_AF_UNIX) {
        *(__u64 *)t->laddr = (__u64)sk;
        *(__u64 *)t->raddr = (__u64)BPF_CORE_READ((struct unix_sock *)sk, peer);
    }
    e->flags |= VIGIL_SYSCALL_SOCKET;
}

#endif
