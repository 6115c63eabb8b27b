// SPDX-License-Identifier: GPL-2.0
/* conn sensor: TCP connection lifecycle (open, close with duration, bytes each way and
 * retransmits) and TCP drops with the kernel's drop reason (bpfd's tcpdrop).
 *
 * Hooks (VigilSensors/Sensors.swift `connHooks`), all tracepoints (no kprobe, no fentry):
 *   - sock/inet_sock_set_state (tp_btf, else raw_tp): every TCP state change. SYN_SENT runs in the
 *     connecting task: it passes the filters there and is remembered by its struct sock (as
 *     libbpf-tools' tcplife does); ESTABLISHED after SYN_SENT reports the connect, CLOSE the close
 *     (both may run in softirq, so the event's header is the remembered task's). SYN_RECV (a
 *     child socket of a listener) notes the time the connection began.
 *   - syscalls/sys_exit_accept4 and sys_exit_accept (tracepoints): the accepting task, from the
 *     new fd's socket: passes the filters there, is remembered and reports the accept.
 *   - skb/kfree_skb (tp_btf, else raw_tp): a TCP packet freed with a drop reason. Its socket's
 *     remembered task is the header when known; else the current task, which must pass the
 *     filters (a drop in softirq is charged to whatever ran).
 * A connection not opened while the sensor ran (or filtered at its open) reports nothing. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"
#include "sensor.bpf.h"
#include "socket.bpf.h"

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_conn_event);
VIGIL_ABI_TYPE(vigil_tcpdrop_event);

#define VIGIL_IPPROTO_TCP 6
#define VIGIL_SOCK_STREAM 1
#define VIGIL_ETH_P_IP 0x0800
#define VIGIL_ETH_P_IPV6 0x86DD
/* include/net/tcp_states.h (macros' values, an enum in the kernel without BTF of its own names) */
#define VIGIL_TCP_ESTABLISHED 1
#define VIGIL_TCP_SYN_SENT 2
#define VIGIL_TCP_SYN_RECV 3
#define VIGIL_TCP_CLOSE 7

/* The task that opened a connection. */
struct conn_owner {
    struct vigil_event_header hdr; /* as filled at connect/accept; kind, size, time, cpu set per event */
    __u64 start_ns;
    __u8 passive;
    __u8 _pad[7];
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct conn_owner);
} conn_owners SEC(".maps");

/* When a child socket of a listener began (SYN_RECV), until accept takes it or it closes. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u64);
} conn_births SEC(".maps");

/* Per-CPU room for an owner being built (too big for the stack next to the event). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct conn_owner);
} conn_scratch SEC(".maps");

/* Fills `t` from the struct sock (the local and remote ends, family, state). */
static __always_inline void conn_tuple(struct vigil_socket_tuple *t, struct sock *sk)
{
    __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    __builtin_memset(t, 0, sizeof(*t));
    t->family = family;
    t->type = VIGIL_SOCK_STREAM;
    t->protocol = VIGIL_IPPROTO_TCP;
    t->state = BPF_CORE_READ(sk, __sk_common.skc_state);
    /* inet_sport, not skc_num: the port is released (skc_num = 0) before some closes report */
    t->lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
    t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (family == VIGIL_AF_INET) {
        BPF_CORE_READ_INTO((__u32 *)t->laddr, sk, __sk_common.skc_rcv_saddr);
        BPF_CORE_READ_INTO((__u32 *)t->raddr, sk, __sk_common.skc_daddr);
    } else {
        BPF_CORE_READ_INTO((struct in6_addr *)t->laddr, sk, __sk_common.skc_v6_rcv_saddr);
        BPF_CORE_READ_INTO((struct in6_addr *)t->raddr, sk, __sk_common.skc_v6_daddr);
    }
}

static __always_inline bool conn_is_tcp_ip(struct sock *sk)
{
    __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    return (family == VIGIL_AF_INET || family == VIGIL_AF_INET6) && BPF_CORE_READ(sk, sk_protocol) == VIGIL_IPPROTO_TCP;
}

/* Reports one phase of the connection `sk` opened by `owner`. */
static __always_inline void conn_emit(struct sock *sk, struct conn_owner *owner, __u8 phase, __u8 oldstate)
{
    struct vigil_conn_event *e = vigil_reserve_low(sizeof(*e));
    if (!e)
        return;
    __u64 now = bpf_ktime_get_boot_ns();
    e->hdr = owner->hdr;
    e->hdr.ts_ns = now;
    e->hdr.kind = VIGIL_EVENT_CONN;
    e->hdr.size = sizeof(*e);
    e->hdr.cpu = bpf_get_smp_processor_id();
    conn_tuple(&e->tuple, sk);
    if (phase == VIGIL_CONN_CLOSE)
        e->tuple.state = oldstate;
    e->sock = (__u64)sk;
    e->start_ns = owner->start_ns;
    e->duration_ns = 0;
    e->bytes_sent = 0;
    e->bytes_received = 0;
    e->retransmits = 0;
    if (phase == VIGIL_CONN_RETRANSMIT) {
        e->duration_ns = now - owner->start_ns;
        e->retransmits = BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
    }
    if (phase == VIGIL_CONN_CLOSE) {
        struct tcp_sock *tp = (struct tcp_sock *)sk;
        e->duration_ns = now - owner->start_ns;
        /* Payload bytes. The kernel's bytes_acked counts an acknowledged SYN and FIN as a byte
         * each, bytes_received a received FIN: data bytes sent are bytes_sent (data of every
         * transmission) less bytes_retrans, data received is bytes_received less the peer's FIN
         * (SOCK_DONE: tcp_fin set it). */
        if (bpf_core_field_exists(tp->bytes_retrans))
            e->bytes_sent = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
        else
            e->bytes_sent = BPF_CORE_READ(tp, bytes_acked);
        e->bytes_received = BPF_CORE_READ(tp, bytes_received);
        unsigned long sk_flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
        if (e->bytes_received && (sk_flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))))
            e->bytes_received -= 1;
        e->retransmits = BPF_CORE_READ(tp, total_retrans);
    }
    e->phase = phase;
    e->flags = owner->passive ? VIGIL_CONN_PASSIVE : 0;
    e->_pad = 0;
    vigil_submit(e, sizeof(*e));
}

/* Remembers the current task as the opener of `sk` (it passed the filters). */
static __always_inline struct conn_owner *conn_remember(struct sock *sk, __u64 start_ns, bool passive)
{
    __u32 zero = 0;
    __u64 key = (__u64)sk;
    struct conn_owner *o = bpf_map_lookup_elem(&conn_scratch, &zero);
    if (!o)
        return NULL;
    vigil_fill_header(&o->hdr, 0, 0);
    o->start_ns = start_ns;
    o->passive = passive;
    bpf_map_update_elem(&conn_owners, &key, o, BPF_ANY);
    return bpf_map_lookup_elem(&conn_owners, &key);
}

static __always_inline int handle_state(struct sock *sk, int oldstate, int newstate)
{
    if (!conn_is_tcp_ip(sk))
        return 0;
    __u64 key = (__u64)sk;
    struct conn_owner *owner;

    switch (newstate) {
    case VIGIL_TCP_SYN_SENT:
        /* in connect(), in the connecting task */
        if (!vigil_filtered())
            conn_remember(sk, bpf_ktime_get_boot_ns(), false);
        return 0;
    case VIGIL_TCP_SYN_RECV: {
        __u64 now = bpf_ktime_get_boot_ns();
        bpf_map_update_elem(&conn_births, &key, &now, BPF_ANY);
        return 0;
    }
    case VIGIL_TCP_ESTABLISHED:
        if (oldstate != VIGIL_TCP_SYN_SENT)
            return 0;
        owner = bpf_map_lookup_elem(&conn_owners, &key);
        if (owner)
            conn_emit(sk, owner, VIGIL_CONN_CONNECT, oldstate);
        return 0;
    case VIGIL_TCP_CLOSE:
        bpf_map_delete_elem(&conn_births, &key);
        owner = bpf_map_lookup_elem(&conn_owners, &key);
        if (!owner)
            return 0;
        conn_emit(sk, owner, VIGIL_CONN_CLOSE, oldstate);
        bpf_map_delete_elem(&conn_owners, &key);
        return 0;
    }
    return 0;
}

VIGIL_BTF_OR_RAW(state, inet_sock_set_state, handle_state(sk, oldstate, newstate),
                 struct sock *sk, int oldstate, int newstate)

/* A segment of a connection the sensor knows was retransmitted (in softirq or a timer: the
 * opener's header is used, as for the other phases). */
static __always_inline int handle_retransmit(struct sock *sk)
{
    if (!sk || !conn_is_tcp_ip(sk))
        return 0;
    __u64 key = (__u64)sk;
    struct conn_owner *owner = bpf_map_lookup_elem(&conn_owners, &key);
    if (owner)
        conn_emit(sk, owner, VIGIL_CONN_RETRANSMIT, 0);
    return 0;
}

VIGIL_BTF_OR_RAW(retransmit, tcp_retransmit_skb, handle_retransmit(sk),
                 struct sock *sk)

/* accept and accept4 returned `ret`: the new fd's connection is this task's. */
static __always_inline int handle_accept(long ret)
{
    if (ret < 0)
        return 0;
    __u64 ino = 0;
    struct sock *sk = vigil_fd_sock(bpf_get_current_task_btf(), ret, &ino);
    if (!sk || !conn_is_tcp_ip(sk) || vigil_filtered())
        return 0;
    __u64 key = (__u64)sk;
    __u64 *born = bpf_map_lookup_elem(&conn_births, &key);
    __u64 start = born ? *born : bpf_ktime_get_boot_ns();
    bpf_map_delete_elem(&conn_births, &key);
    struct conn_owner *owner = conn_remember(sk, start, true);
    if (owner)
        conn_emit(sk, owner, VIGIL_CONN_ACCEPT, 0);
    return 0;
}

SEC("?tracepoint/syscalls/sys_exit_accept4")
int accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
    return handle_accept(ctx->ret);
}

SEC("?tracepoint/syscalls/sys_exit_accept")
int accept_exit(struct trace_event_raw_sys_exit *ctx)
{
    return handle_accept(ctx->ret);
}

/* A freed TCP packet with a drop reason. */
static __always_inline int handle_drop(struct sk_buff *skb, void *location, __u32 reason, struct sock *rx_sk)
{
    if (reason == 0)
        return 0;
    if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
        reason == (__u32)bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
        return 0;
    /* A closing socket's own write queue freed (tcp_write_queue_purge): not a packet the
     * network or the stack refused. */
    if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE) &&
        reason == (__u32)bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE))
        return 0;
    __u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
    if (proto != VIGIL_ETH_P_IP && proto != VIGIL_ETH_P_IPV6)
        return 0;
    unsigned char *head = BPF_CORE_READ(skb, head);
    __u16 nh = BPF_CORE_READ(skb, network_header);
    if (nh == (__u16)~0U)
        return 0;
    struct vigil_socket_tuple t = {};
    __u32 tcp_off;
    if (proto == VIGIL_ETH_P_IP) {
        struct iphdr ip;
        if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) || ip.version != 4 || ip.protocol != VIGIL_IPPROTO_TCP)
            return 0;
        t.family = VIGIL_AF_INET;
        *(__u32 *)t.laddr = ip.saddr;
        *(__u32 *)t.raddr = ip.daddr;
        tcp_off = nh + ip.ihl * 4;
    } else {
        struct ipv6hdr ip6;
        if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh) || ip6.nexthdr != VIGIL_IPPROTO_TCP)
            return 0;
        t.family = VIGIL_AF_INET6;
        __builtin_memcpy(t.laddr, &ip6.saddr, 16);
        __builtin_memcpy(t.raddr, &ip6.daddr, 16);
        tcp_off = nh + sizeof(struct ipv6hdr);
    }
    /* source port, destination port, seq, ack, then data offset and flags (bytes 12, 13) */
    __u8 tcp[14];
    if (bpf_probe_read_kernel(tcp, sizeof(tcp), head + (tcp_off & 0xffff)))
        return 0;
    t.type = VIGIL_SOCK_STREAM;
    t.protocol = VIGIL_IPPROTO_TCP;
    t.lport = (tcp[0] << 8) | tcp[1];
    t.rport = (tcp[2] << 8) | tcp[3];

    struct sock *sk = rx_sk ? rx_sk : BPF_CORE_READ(skb, sk);
    __u64 key = (__u64)sk;
    struct conn_owner *owner = sk ? bpf_map_lookup_elem(&conn_owners, &key) : NULL;
    if (!owner && vigil_filtered())
        return 0;
    struct vigil_tcpdrop_event *e = vigil_reserve_low(sizeof(*e));
    if (!e)
        return 0;
    if (owner) {
        e->hdr = owner->hdr;
        e->hdr.ts_ns = bpf_ktime_get_boot_ns();
        e->hdr.kind = VIGIL_EVENT_TCPDROP;
        e->hdr.size = sizeof(*e);
        e->hdr.cpu = bpf_get_smp_processor_id();
    } else {
        vigil_fill_header(&e->hdr, VIGIL_EVENT_TCPDROP, sizeof(*e));
    }
    if (sk)
        t.state = BPF_CORE_READ(sk, __sk_common.skc_state);
    e->tuple = t;
    e->sock = key;
    e->location = (__u64)location;
    e->reason = reason;
    e->tcp_flags = tcp[13];
    e->flags = owner ? VIGIL_TCPDROP_OWNER : 0;
    e->_pad = 0;
    vigil_submit(e, sizeof(*e));
    return 0;
}

SEC("?tp_btf/kfree_skb")
int BPF_PROG(drop_tp_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
{
    return handle_drop(skb, location, reason, rx_sk);
}

/* Kernels before rx_sk (6.12) or without tp_btf: the tracepoint's record. Before drop reasons
 * (5.17) it loads and reports nothing (reason 0). */
SEC("?tracepoint/skb/kfree_skb")
int drop_tracepoint(struct trace_event_raw_kfree_skb *ctx)
{
    struct sock *rx_sk = NULL;
    __u32 reason = 0;
    if (bpf_core_field_exists(ctx->rx_sk))
        rx_sk = BPF_CORE_READ(ctx, rx_sk);
    if (bpf_core_field_exists(ctx->reason))
        reason = BPF_CORE_READ(ctx, reason);
    return handle_drop(BPF_CORE_READ(ctx, skbaddr), BPF_CORE_READ(ctx, location), reason, rx_sk);
}
