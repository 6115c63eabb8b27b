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

/* The struct sock behind fd `fd` of the current task, NULL when it is no socket; *ino gets the
 * socket's inode. */
static __always_inline struct sock *vigil_fd_sock(__s32 fd, __u64 *ino)
{
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

/* vigil_fd_sock for `task` (bpf_get_current_task_btf) where vigil_rdonly_cast holds, with no
 * helper call: the file by vigil_fd_file_typed, its socket cast typed, so the struct sock's
 * members are plain loads too. */
static __always_inline struct sock *vigil_fd_sock_typed(struct task_struct *task, __s32 fd)
{
    struct file *file = vigil_fd_file_typed(task, fd);
    if (!file)
        return NULL;
    if ((file->f_inode->i_mode & VIGIL_S_IFMT) != VIGIL_S_IFSOCK)
        return NULL;
    struct socket *sock = bpf_rdonly_cast(file->private_data, bpf_core_type_id_kernel(struct socket));
    return sock->sk;
}

/* Whether a call on the socket of argument 0 is DNS traffic (VIGIL_SPEC_DNS_ONLY): either end of
 * the IP socket has port 53, or a socket address argument (recvfrom's source, sendto's
 * destination on an unconnected socket) does. At exit, read before anything is captured; at
 * entry (`at_entry`), an address the call has yet to fill (VIGIL_CAPTURE_SOCKADDR_EXIT, not
 * NULL) may still be port 53: true, the exit decides. Every call of a DNS-only syscall pays
 * this (each recvfrom of the host under the default rules): with vigil_rdonly_cast the socket's
 * fields are plain loads, else about fourteen probe reads. `task` is the current task as a BTF
 * pointer (bpf_get_current_task_btf). */
static __always_inline bool vigil_dns_port(struct task_struct *task, const __u64 *args, const __u8 *kinds, bool at_entry)
{
    __u16 family, num, dport;
    if (vigil_rdonly_cast) {
        struct sock *sk = vigil_fd_sock_typed(task, (__s32)args[0]);
        if (!sk)
            return false;
        family = sk->__sk_common.skc_family;
        num = sk->__sk_common.skc_num;
        dport = sk->__sk_common.skc_dport;
    } else {
        __u64 ino = 0;
        struct sock *sk = vigil_fd_sock((__s32)args[0], &ino);
        if (!sk)
            return false;
        family = BPF_CORE_READ(sk, __sk_common.skc_family);
        num = BPF_CORE_READ(sk, __sk_common.skc_num);
        dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
    }
    if (family != VIGIL_AF_INET && family != VIGIL_AF_INET6)
        return false;
    if (num == 53 || bpf_ntohs(dport) == 53)
        return true;
#pragma unroll
    for (int i = 0; i < VIGIL_SYSCALL_ARGS; i++) {
        bool address = kinds[i] == VIGIL_CAPTURE_SOCKADDR_ENTRY || kinds[i] == VIGIL_CAPTURE_SOCKADDR_EXIT;
        if (!address || !args[i])
            continue;
        if (at_entry && kinds[i] == VIGIL_CAPTURE_SOCKADDR_EXIT)
            return true;
        __u16 port = 0; /* sin_port and sin6_port: both at offset 2 */
        bpf_probe_read_user(&port, sizeof(port), (const void *)(args[i] + 2));
        if (bpf_ntohs(port) == 53)
            return true;
    }
    return false;
}

/* Appends the tuple of the socket the spec names to `e` (after its data_len bytes of data) and
 * sets VIGIL_SYSCALL_SOCKET; nothing when the fd is no socket or the call made no fd. */
static __always_inline void vigil_socket_tuple(struct vigil_syscall_event *e, __u16 spec_flags, long ret)
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
    struct sock *sk = vigil_fd_sock(fd, &ino);
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
