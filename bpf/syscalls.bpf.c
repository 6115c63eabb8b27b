// SPDX-License-Identifier: GPL-2.0
/* syscalls sensor: any syscall, entry and exit paired into one record (struct vigil_syscall_event)
 * with the return value, the latency, the raw arguments and what the table says to read of them:
 * strings and paths at entry, input buffers and socket addresses at entry, output buffers, socket
 * addresses and fd pairs at exit (bounded; a cut value is marked).
 *
 * Hooks (VigilSensors/Sensors.swift, `syscallHooks(for:)`): for a small set, one program pair on
 * the per-syscall tracepoints syscalls/sys_enter_NAME and sys_exit_NAME, attached once per wanted
 * syscall (a syscall nobody asked for runs no program); for a large set (and `--event all`), the
 * generic sys_enter/sys_exit raw tracepoints, as tp_btf, else raw_tp, which run for every syscall on
 * the host: one nobody asked for leaves after one array lookup (inlined by the verifier) and one
 * bit test (`syscall_wanted`). Before the per-syscall tracepoints, where the kernel has kprobes, the
 * per-syscall kprobe variants (kprobe.multi, else kprobe) on the syscalls' own functions: unlike a
 * syscall tracepoint, they cost nothing to the syscalls they are not on. Every hook pairs entry and exit through `pending` and writes the
 * same record; the syscall is always the one the number says.
 * What to read per syscall is in `syscall_specs`, written by userspace from the generated table
 * (Sources/VigilEvents/Generated/Syscalls.swift, from bpf/syscalls/syscalls.table).
 *
 * Between entry and exit the record is built in task-local storage (one per task that made a
 * wanted syscall; freed with the task), and copied to the shared ring at its real size at exit. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"
#include "sensor.bpf.h"
#include "socket.bpf.h"

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_syscall_event);
VIGIL_ABI_TYPE(vigil_syscall_spec);
VIGIL_ABI_TYPE(vigil_syscall_bitmap);

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vigil_syscall_bitmap);
} syscall_wanted SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, VIGIL_SYSCALL_MAX);
    __type(key, __u32);
    __type(value, struct vigil_syscall_spec);
} syscall_specs SEC(".maps");

/* A record being built: `record` is a struct vigil_syscall_event and its data; the data area has
 * VIGIL_SYSCALL_STR_MAX bytes of slack so every masked offset plus a bounded read stays inside. */
#define RECORD_BYTES (sizeof(struct vigil_syscall_event) + VIGIL_SYSCALL_DATA_MAX + VIGIL_SYSCALL_STR_MAX)
struct pending {
    __u32 active;   /* the pending syscall's number + 1; 0 when none */
    __u32 tag;      /* which attachment made the entry (`vigil_syscalls_tag`, a kprobe.multi link's cookie) */
    char record[RECORD_BYTES];
};

/* This object's attachments, set before load (unique in the process): an entry that finds the
 * pending record of an earlier entry by the same attachment still active lost that call's event.
 * A kprobe.multi link's cookie is its tag instead, as two links of one program run together while
 * the set changes (`retargetMulti`), as two objects' do while the sensor changes hook: then one
 * call has two entries, not a lost one. */
const volatile __u32 vigil_syscalls_tag = 0;

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct pending);
} pending SEC(".maps");

/* The connections whose first payload is still to come (VIGIL_SPEC_FIRST_PAYLOAD): (tgid << 32 | fd)
 * of a TCP socket armed at connect's exit, disarmed by the first call that wrote something on it.
 * Keyed by the fd, not the socket, so a write that is not armed costs one hash lookup and no read
 * of the task's fd table. Least recently used entries go when full (a connection that never
 * wrote, or whose fd was closed first). */
#define VIGIL_FIRST_PAYLOAD_MAX 16384
#define VIGIL_IPPROTO_TCP 6
#define VIGIL_IPPROTO_UDP 17
#define VIGIL_EINPROGRESS 115

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, VIGIL_FIRST_PAYLOAD_MAX);
    __type(key, __u64);
    __type(value, __u8);
} first_payload SEC(".maps");

/* The UDP sockets connected to port 53 (VIGIL_SPEC_DNS_ARMED): (tgid << 32 | fd) armed at connect's
 * exit, so the answers a resolver reads with read(2) (Go's) are captured while every other read
 * leaves at entry after one hash lookup. Kept while the socket lives (a resolver may read several
 * answers); a closed fd's entry is dropped by the next read on that fd number (its socket, if
 * any, no longer has port 53: vigil_dns_port at exit) or by the least recently used going. */
#define VIGIL_DNS_SOCKETS_MAX 4096

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, VIGIL_DNS_SOCKETS_MAX);
    __type(key, __u64);
    __type(value, __u8);
} dns_sockets SEC(".maps");

/* The key of fd `fd` of `task`'s process in first_payload and dns_sockets: tgid, fd. */
static __always_inline __u64 vigil_task_fd_key(struct task_struct *task, __s32 fd)
{
    return ((__u64)task->tgid << 32) | (__u32)fd;
}

static __always_inline __u64 vigil_fd_key(__s32 fd)
{
    return vigil_task_fd_key(bpf_get_current_task_btf(), fd);
}

/* Whether fd `fd` of the current `task` is armed in `map` (first_payload, dns_sockets). */
static __always_inline bool vigil_armed(void *map, struct task_struct *task, __s32 fd)
{
    __u64 key = vigil_task_fd_key(task, fd);
    return bpf_map_lookup_elem(map, &key) != NULL;
}

/* The caller's fd `fd` is no longer armed in `map` (its first payload was written, it is gone). */
static __always_inline void vigil_disarm(void *map, __s32 fd)
{
    __u64 key = vigil_fd_key(fd);
    bpf_map_delete_elem(map, &key);
}

/* At connect's exit: a TCP socket over IP that connected or is connecting waits for its first
 * payload (VIGIL_SPEC_ARM_PAYLOAD); a UDP socket connected to port 53 is a resolver's, whose
 * answers read(2) may receive (VIGIL_SPEC_ARM_DNS). */
static __noinline void vigil_arm(__s32 fd, long ret, __u32 flags)
{
    if (ret != 0 && ret != -VIGIL_EINPROGRESS)
        return;
    __u64 ino = 0;
    struct sock *sk = vigil_fd_sock(bpf_get_current_task_btf(), fd, &ino);
    if (!sk)
        return;
    __u16 family = vigil_sock_field(sk, __sk_common.skc_family);
    if (family != VIGIL_AF_INET && family != VIGIL_AF_INET6)
        return;
    __u16 protocol = vigil_sock_field(sk, sk_protocol);
    __u64 key = vigil_fd_key(fd);
    __u8 one = 1;
    if ((flags & VIGIL_SPEC_ARM_PAYLOAD) && protocol == VIGIL_IPPROTO_TCP)
        bpf_map_update_elem(&first_payload, &key, &one, BPF_ANY);
    if ((flags & VIGIL_SPEC_ARM_DNS) && protocol == VIGIL_IPPROTO_UDP && ret == 0 &&
        bpf_ntohs(vigil_sock_field(sk, __sk_common.skc_dport)) == 53)
        bpf_map_update_elem(&dns_sockets, &key, &one, BPF_ANY);
}

/* A call captured for DNS alone whose socket has no port 53 is dropped (counted as filtered); an
 * armed read's fd number whose socket is gone (closed, the number reused) is disarmed. */
static __noinline void vigil_dns_drop(__u32 flags, __s32 fd)
{
    if (flags & VIGIL_SPEC_DNS_ARMED)
        vigil_disarm(&dns_sockets, fd);
    vigil_count(VIGIL_COUNTER_FILTERED);
}

/* The syscall number saved in the user registers (at exit: the hook gives only the result). */
#if defined(__TARGET_ARCH_arm64)
struct user_pt_regs___arm64 { int syscallno; } __attribute__((preserve_access_index));
#define SYSCALL_NR(regs) BPF_CORE_READ((struct user_pt_regs___arm64 *)(regs), syscallno)
#else
#define SYSCALL_NR(regs) BPF_CORE_READ((regs), orig_ax)
#endif

/* A 32-bit task's syscall numbers are another table's (ia32): not decodable by this one. */
#if defined(__TARGET_ARCH_x86)
#define TS_COMPAT 0x0002
static __always_inline bool compat_task(struct task_struct *task)
{
    return task->thread_info.status & TS_COMPAT;
}
#else
static __always_inline bool compat_task(struct task_struct *task) { return false; }
#endif

static __always_inline bool wanted(long id)
{
    __u32 zero = 0;
    if ((__u64)id >= VIGIL_SYSCALL_MAX)
        return false;
    struct vigil_syscall_bitmap *map = bpf_map_lookup_elem(&syscall_wanted, &zero);
    if (!map)
        return false;
    return (map->bits[(id >> 6) & (VIGIL_SYSCALL_MAX / 64 - 1)] >> (id & 63)) & 1;
}

/* Reads argument `i` as `kind` says into the record's data; `ret` is the result at exit. */
static __always_inline void capture(struct vigil_syscall_event *e, struct vigil_syscall_spec *spec, int i, __s64 ret)
{
    __u32 kind = spec->kind[i];
    __u32 lenarg = spec->len[i];
    __u64 len = 0, cap, count;
    __u32 pos = e->data_len;
    bool str = false;
    const void *src = (const void *)e->args[i];
    long n;

    switch (kind) {
    case VIGIL_CAPTURE_STR_ENTRY:
    case VIGIL_CAPTURE_STR_EXIT:
        str = true;
        len = spec->str_max;
        break;
    case VIGIL_CAPTURE_BUF_ENTRY:
        len = lenarg < VIGIL_SYSCALL_ARGS ? e->args[lenarg & 7] : 0;
        cap = spec->buf_max;
        goto bounded;
    case VIGIL_CAPTURE_BUF_EXIT:
        len = ret > 0 ? ret : 0;
        if (lenarg < VIGIL_SYSCALL_ARGS && e->args[lenarg & 7] < len)
            len = e->args[lenarg & 7];
        cap = spec->buf_max;
        goto bounded;
    case VIGIL_CAPTURE_SOCKADDR_ENTRY:
        len = lenarg < VIGIL_SYSCALL_ARGS ? (__u32)e->args[lenarg & 7] : 0;
        cap = VIGIL_SYSCALL_SOCKADDR_MAX;
        goto bounded;
    case VIGIL_CAPTURE_SOCKADDR_EXIT: {
        __u32 l = 0;
        if (ret < 0 || lenarg >= VIGIL_SYSCALL_ARGS || !e->args[lenarg & 7] ||
            bpf_probe_read_user(&l, sizeof(l), (void *)e->args[lenarg & 7]))
            return;
        len = l;
        cap = VIGIL_SYSCALL_SOCKADDR_MAX;
        goto bounded;
    }
    case VIGIL_CAPTURE_MSG_ENTRY:
    case VIGIL_CAPTURE_MSG_EXIT: {
        /* The message's iovec array, then as an iovec argument. */
        struct user_msghdr msg;
        if (!src)
            return;
        if (bpf_probe_read_user(&msg, sizeof(msg), src)) {
            e->arg_failed |= 1 << i;
            return;
        }
        src = msg.msg_iov;
        count = msg.msg_iovlen;
        goto vector;
    }
    case VIGIL_CAPTURE_IOV_ENTRY:
    case VIGIL_CAPTURE_IOV_EXIT:
        count = lenarg < VIGIL_SYSCALL_ARGS ? e->args[lenarg & 7] : 0;
    vector: {
        /* The first element's bytes: a DNS message, a request line, a protocol's greeting. */
        struct iovec v;
        if (!src || !count)
            return;
        if (bpf_probe_read_user(&v, sizeof(v), src)) {
            e->arg_failed |= 1 << i;
            return;
        }
        src = v.iov_base;
        len = v.iov_len;
        if (kind == VIGIL_CAPTURE_IOV_EXIT || kind == VIGIL_CAPTURE_MSG_EXIT) {
            if (ret <= 0)
                return;
            if (len > (__u64)ret)
                len = ret;
        }
        cap = spec->buf_max;
        goto bounded;
    }
    case VIGIL_CAPTURE_FIXED_ENTRY:
        len = lenarg;
        cap = 64;
        goto bounded;
    case VIGIL_CAPTURE_FIXED_EXIT:
        if (ret < 0)
            return;
        len = lenarg;
        cap = 64;
        goto bounded;
    default:
        return;
    }
    goto read;
bounded:
    if (len > cap) {
        len = cap;
        e->arg_truncated |= 1 << i;
    }
read:
    if (!src || !len)
        return;
    if (pos >= VIGIL_SYSCALL_DATA_MAX) {
        e->flags |= VIGIL_SYSCALL_DATA_FULL;
        return;
    }
    if (len > VIGIL_SYSCALL_DATA_MAX - pos) {
        len = VIGIL_SYSCALL_DATA_MAX - pos;
        e->arg_truncated |= 1 << i;
    }
    if (len > VIGIL_SYSCALL_STR_MAX)
        len = VIGIL_SYSCALL_STR_MAX;
    /* Keeps the masks below: clang drops them as redundant after the bound above, and the 6.1
     * verifier loses that bound when len is spilled to the stack (it refused the exit program:
     * "R1 min value is outside of the allowed memory range", size=65535). */
    barrier_var(len);
    char *dst = e->data + (pos & (VIGIL_SYSCALL_DATA_MAX - 1));
    if (str) {
        n = bpf_probe_read_user_str(dst, len & (VIGIL_SYSCALL_STR_MAX * 2 - 1), src);
        if (n <= 0) {
            e->arg_failed |= 1 << i;
            return;
        }
        if (n == len) /* filled the bound (a string exactly that long is reported cut too) */
            e->arg_truncated |= 1 << i;
        n -= 1; /* the NUL */
    } else {
        if (bpf_probe_read_user(dst, len & (VIGIL_SYSCALL_STR_MAX * 2 - 1), src)) {
            e->arg_failed |= 1 << i;
            return;
        }
        n = len;
    }
    e->arg_len[i] = n;
    e->data_len = pos + n;
}

static __always_inline bool at_entry(__u32 kind)
{
    return kind == VIGIL_CAPTURE_STR_ENTRY || kind == VIGIL_CAPTURE_BUF_ENTRY ||
           kind == VIGIL_CAPTURE_SOCKADDR_ENTRY || kind == VIGIL_CAPTURE_FIXED_ENTRY ||
           kind == VIGIL_CAPTURE_IOV_ENTRY || kind == VIGIL_CAPTURE_MSG_ENTRY;
}

static __always_inline void emit(struct vigil_syscall_event *e)
{
    __u64 size = sizeof(*e) + e->data_len;
    if (e->flags & VIGIL_SYSCALL_SOCKET) /* the tuple after the data (socket.bpf.h) */
        size += sizeof(struct vigil_socket_tuple);
    if (size > sizeof(*e) + VIGIL_SYSCALL_DATA_MAX + sizeof(struct vigil_socket_tuple))
        size = sizeof(*e) + VIGIL_SYSCALL_DATA_MAX + sizeof(struct vigil_socket_tuple);
    e->hdr.size = size;
    vigil_output_low(e, size);
}

/* A pending call whose exit never ran (its event is lost, and counted): the kprobe variants' returns
 * come from a bounded pool (a kretprobe keeps max(10, 2 x CPUs) instances; kretprobe.multi's fprobe
 * has its own); a call entered while the pool is used up has no return. A syscall
 * dropped from the set meanwhile is not counted (its exit is detached; nobody wants its event).
 * The tracepoint hooks never leave one: a syscall that does not return (exit, exit_group,
 * rt_sigreturn) is sent at entry, and a thread killed in a syscall leaves it through the exit
 * tracepoint first. */
static __always_inline void count_missed_exit(struct pending *p)
{
    if (p->active && wanted(p->active - 1))
        vigil_count(VIGIL_COUNTER_LOST);
}

/* Whether a call of `spec`'s syscall by `task` passes the filters in the kernel. State changes
 * (open, dup, close, ...: the fd table) skip them, as exec/fork/exit do: userspace filters them
 * after enrichment (StateChangeFilter); Vigil's own are still dropped. A 32-bit task's syscall
 * numbers are another table's (ia32): dropped, counted as filtered. */
static __always_inline bool passes_filters(struct task_struct *task, struct vigil_syscall_spec *spec)
{
    if (compat_task(task)) {
        vigil_count(VIGIL_COUNTER_FILTERED);
        return false;
    }
    if (spec->flags & VIGIL_SPEC_STATE)
        return !vigil_task_is_self(task) && !vigil_outside_followed_tree(task);
    return !vigil_task_filtered(task);
}

/* Starts `task`'s record of syscall `nr` with arguments `args` in its pending storage (made on
 * first use): the header and the arguments, no data yet. NULL, counted lost, when the storage
 * cannot be had. */
static __always_inline struct pending *start_record(struct task_struct *task, __u32 nr, const __u64 *args)
{
    struct pending *p = bpf_task_storage_get(&pending, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!p) {
        vigil_count(VIGIL_COUNTER_LOST);
        return NULL;
    }
    struct vigil_syscall_event *e = (struct vigil_syscall_event *)p->record;
    vigil_fill_task_header(&e->hdr, task, VIGIL_EVENT_SYSCALL, 0);
    e->latency_ns = 0;
    e->ret = 0;
    e->nr = nr;
    e->flags = 0;
    e->data_len = 0;
    e->arg_truncated = 0;
    e->arg_failed = 0;
    e->_pad = 0;
#pragma unroll
    for (int i = 0; i < VIGIL_SYSCALL_ARGS; i++) {
        e->args[i] = args[i];
        e->arg_len[i] = 0;
    }
    return p;
}

/* A syscall's entry. `btf_regs`: the user registers as a BTF pointer (tp_btf's argument), read
 * with plain loads; NULL where the hook has none (the others): then the task's, from
 * bpf_task_pt_regs, fetched only once the syscall is wanted. No probe-read helper on this path:
 * every call of a wanted syscall pays it, and on CPUs whose return-thunk mitigations make each
 * helper call dear (SRSO "Safe RET") the probe reads were most of its cost (BENCHMARKS.md).
 * A syscall captured at its exit alone (VIGIL_SPEC_AT_EXIT) leaves at once: only the generic
 * hook runs this for it. */
static __always_inline int on_enter(struct pt_regs *btf_regs, long id, __u32 tag)
{
    if (!wanted(id))
        return 0;
    __u32 nr = id;
    struct vigil_syscall_spec *spec = bpf_map_lookup_elem(&syscall_specs, &nr);
    if (!spec || (spec->flags & VIGIL_SPEC_AT_EXIT))
        return 0;
    struct task_struct *task = bpf_get_current_task_btf();
    if (!passes_filters(task, spec))
        return 0;
    __u64 args[VIGIL_SYSCALL_ARGS];
    vigil_syscall_args(args, btf_regs ? btf_regs : (struct pt_regs *)bpf_task_pt_regs(task));
    struct pending *p = start_record(task, nr, args);
    if (!p)
        return 0;
    if (p->tag == tag)
        count_missed_exit(p);
    p->tag = tag;
    struct vigil_syscall_event *e = (struct vigil_syscall_event *)p->record;
#pragma unroll
    for (int i = 0; i < VIGIL_SYSCALL_ARGS; i++) {
        if (at_entry(spec->kind[i]))
            capture(e, spec, i, 0);
    }
    if (spec->flags & VIGIL_SPEC_NO_RETURN) {
        e->flags |= VIGIL_SYSCALL_NO_EXIT;
        p->active = 0;
        emit(e);
        return 0;
    }
    p->active = nr + 1;
    return 0;
}

/* The exit of a syscall captured at its exit alone (VIGIL_SPEC_AT_EXIT): the calls its socket
 * does not select are dropped (counted as filtered) before anything is built: not an armed
 * connection's first payload, not DNS (a read on a socket no connect to port 53 armed, no port
 * 53 on the socket or the address). Else the record is started from the saved registers, to be
 * filled as an entry's would be (NULL: dropped). The record's time is the exit's; its latency 0. */
static __noinline struct pending *start_at_exit(struct task_struct *task, struct vigil_syscall_spec *spec, __u32 nr, long ret)
{
    __u64 args[VIGIL_SYSCALL_ARGS];
    vigil_syscall_args(args, (struct pt_regs *)bpf_task_pt_regs(task));
    __u16 flags = spec->flags;
    bool armed = true;
    if (flags & VIGIL_SPEC_FIRST_PAYLOAD)
        armed = vigil_armed(&first_payload, task, (__s32)args[0]);
    else if (flags & VIGIL_SPEC_DNS_ARMED)
        armed = vigil_armed(&dns_sockets, task, (__s32)args[0]);
    /* Nothing written yet (EAGAIN before the connection is up, ...), nothing read (EAGAIN before
     * the answer came: Go's non-blocking reads): still armed. */
    if (!armed || ((flags & (VIGIL_SPEC_FIRST_PAYLOAD | VIGIL_SPEC_DNS_ARMED)) && ret <= 0)) {
        vigil_count(VIGIL_COUNTER_FILTERED);
        return NULL;
    }
    if ((flags & VIGIL_SPEC_DNS_ONLY) && !vigil_dns_port(task, args, spec->kind)) {
        vigil_dns_drop(flags, (__s32)args[0]);
        return NULL;
    }
    if (!passes_filters(task, spec))
        return NULL;
    return start_record(task, nr, args);
}

static __always_inline int on_exit(long id, long ret)
{
    if (!wanted(id))
        return 0;
    __u32 nr = id;
    struct vigil_syscall_spec *spec = bpf_map_lookup_elem(&syscall_specs, &nr);
    if (!spec)
        return 0;
    struct task_struct *task = bpf_get_current_task_btf();
    struct pending *p;
    bool entry_read; /* the entry arguments' data is in the record */
    if (spec->flags & VIGIL_SPEC_AT_EXIT) {
        p = start_at_exit(task, spec, nr, ret);
        if (!p)
            return 0;
        entry_read = false;
    } else {
        p = bpf_task_storage_get(&pending, task, 0, 0);
        if (!p || p->active != nr + 1)
            return 0;
        p->active = 0;
        entry_read = true;
    }
    struct vigil_syscall_event *e = (struct vigil_syscall_event *)p->record;
    e->ret = ret;
    if (entry_read)
        e->latency_ns = bpf_ktime_get_boot_ns() - e->hdr.ts_ns;
    if (!entry_read || e->arg_failed) {
        /* Captured at exit alone, or an entry read failed (a page not yet faulted in: the helper
         * cannot fault; the call has touched it since): read every entry argument now, in order. */
        e->data_len = 0;
        e->arg_failed = 0;
        e->arg_truncated = 0;
        e->flags &= ~VIGIL_SYSCALL_DATA_FULL;
#pragma unroll
        for (int i = 0; i < VIGIL_SYSCALL_ARGS; i++) {
            e->arg_len[i] = 0;
            if (at_entry(spec->kind[i]))
                capture(e, spec, i, 0);
        }
    }
#pragma unroll
    for (int i = 0; i < VIGIL_SYSCALL_ARGS; i++) {
        __u32 kind = spec->kind[i];
        if (kind != VIGIL_CAPTURE_NONE && !at_entry(kind))
            capture(e, spec, i, ret);
    }
    vigil_socket_tuple(task, e, spec->flags, ret);
    emit(e);
    /* After the record is out (here, the capture above keeps the registers it had: the 6.1
     * verifier lost a bound when these ran first). */
    if (spec->flags & VIGIL_SPEC_FIRST_PAYLOAD)
        vigil_disarm(&first_payload, (__s32)e->args[0]);
    if (spec->flags & (VIGIL_SPEC_ARM_PAYLOAD | VIGIL_SPEC_ARM_DNS))
        vigil_arm((__s32)e->args[0], ret, spec->flags);
    return 0;
}

SEC("?tp_btf/sys_enter")
int BPF_PROG(sys_enter_tp_btf, struct pt_regs *regs, long id)
{
    return on_enter(regs, id, vigil_syscalls_tag);
}

/* raw_tp: `regs` is a plain address here (probe reads only); on_enter reads the task's instead. */
SEC("?raw_tp/sys_enter")
int BPF_PROG(sys_enter_raw_tp, struct pt_regs *regs, long id)
{
    return on_enter(NULL, id, vigil_syscalls_tag);
}

/* A thread that exits with a call pending (a return the pool missed, then no wanted syscall
 * again): its event is lost. Every variant attaches it (on the task's exit; the record is freed
 * with the task). */
static __always_inline int on_task_exit(void)
{
    struct pending *p = bpf_task_storage_get(&pending, bpf_get_current_task_btf(), 0, 0);
    if (p)
        count_missed_exit(p);
    return 0;
}

VIGIL_BTF_OR_RAW(task_exit, sched_process_exit, on_task_exit(), struct task_struct *task)

/* tp_btf: the registers are a trusted pointer, read directly (no probe-read helper call: the
 * exit of every syscall pays this, wanted or not). */
#if defined(__TARGET_ARCH_arm64)
#define SYSCALL_NR_BTF(regs) ((regs)->syscallno)
#else
#define SYSCALL_NR_BTF(regs) ((regs)->orig_ax)
#endif

SEC("?tp_btf/sys_exit")
int BPF_PROG(sys_exit_tp_btf, struct pt_regs *regs, long ret)
{
    return on_exit(SYSCALL_NR_BTF(regs), ret);
}

SEC("?raw_tp/sys_exit")
int BPF_PROG(sys_exit_raw_tp, struct pt_regs *regs, long ret)
{
    return on_exit(SYSCALL_NR(regs), ret);
}

/* The per-syscall tracepoints' records (tracefs events/syscalls/sys_{enter,exit}_NAME/format): the
 * common fields, the syscall number, then the arguments (only as many as the syscall has) or the
 * result. The arguments are read from the saved user registers instead, as the generic hook does,
 * so the record is the same whichever hook made it. */
struct syscall_enter_record {
    __u64 common;
    int nr;
    int _pad;
    unsigned long args[6];
};

struct syscall_exit_record {
    __u64 common;
    int nr;
    int _pad;
    long ret;
};

/* Attached by userspace to syscalls/sys_enter_NAME of each wanted syscall (no auto-attach). */
SEC("?tracepoint")
int sys_enter_tp(struct syscall_enter_record *ctx)
{
    return on_enter(NULL, ctx->nr, vigil_syscalls_tag);
}

/* Attached by userspace to syscalls/sys_exit_NAME of each wanted syscall. */
SEC("?tracepoint")
int sys_exit_tp(struct syscall_exit_record *ctx)
{
    return on_exit(ctx->nr, ctx->ret);
}

/* The per-syscall kprobe variants (kernels with kprobes): on the syscall's own function,
 * __x64_sys_NAME / __arm64_sys_NAME, which only that syscall's calls run. A syscall tracepoint sets
 * TIF_SYSCALL_TRACEPOINT on every task, so every syscall of the host takes the slow entry path; a
 * kprobe costs nothing to the syscalls it is not on. The function's one argument is the saved user
 * registers (the arguments, the number in orig_ax / syscallno); at the return the number is read
 * from the task's saved registers, the result from the return register.
 * kprobe: attached by userspace once per wanted syscall's function (entry and return);
 * kprobe.multi: one link for every wanted syscall's function, one for their returns. */
static __always_inline int kprobe_enter(struct pt_regs *ctx, __u32 tag)
{
    struct pt_regs *regs = (struct pt_regs *)PT_REGS_PARM1(ctx);
    return on_enter(NULL, SYSCALL_NR(regs), tag);
}

static __always_inline int kprobe_exit(struct pt_regs *ctx)
{
    return on_exit(VIGIL_SYSCALL_NR(vigil_user_regs()), PT_REGS_RC(ctx));
}

SEC("?kprobe")
int sys_enter_kprobe(struct pt_regs *ctx)
{
    return kprobe_enter(ctx, vigil_syscalls_tag);
}

SEC("?kretprobe")
int sys_exit_kprobe(struct pt_regs *ctx)
{
    return kprobe_exit(ctx);
}

SEC("?kprobe.multi")
int sys_enter_kprobe_multi(struct pt_regs *ctx)
{
    return kprobe_enter(ctx, bpf_get_attach_cookie(ctx));
}

SEC("?kretprobe.multi")
int sys_exit_kprobe_multi(struct pt_regs *ctx)
{
    return kprobe_exit(ctx);
}
