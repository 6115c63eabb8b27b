// SPDX-License-Identifier: GPL-2.0
/* selftest: the programs that prove VigilBPF works on a real kernel and that `make bench`
 * measures. Every program here is disabled by default ("?" sections); the loader enables the
 * ones a test or a variant needs.
 *
 * - close_seq: tracepoint syscalls/sys_enter_close; emits the fd argument of the target process's
 *   close() calls, so a test can check that events arrive complete and in order.
 * - getpid_*: one emit per getpid() of the target (benchmark of the emit cost).
 * - open_*: the same "an open by the target happened" event from each hook kind, for variant
 *   chains: lsm -> fentry -> kprobe -> tracepoint.
 * - rejected: a program the verifier must refuse (a map value used without a NULL check).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_selftest_event);

/* The process whose events are emitted (tgid); 0 = every process. */
const volatile __u32 target_tgid = 0;

static __always_inline bool is_target(void)
{
    return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline int emit(__u32 hook, __u32 arg)
{
    struct vigil_selftest_event *e;
    __u32 zero = 0;
    __u64 *seq;

    if (!is_target()) {
        return 0;
    }
    e = vigil_reserve(sizeof(*e));
    if (!e)
        return 0;
    vigil_fill_header(&e->hdr, VIGIL_EVENT_SELFTEST, sizeof(*e));
    seq = bpf_map_lookup_elem(&counters, &zero);
    e->seq = seq ? *seq : 0;
    e->hook = hook;
    e->arg = arg;
    vigil_submit(e, sizeof(*e));
    return 0;
}

SEC("?tracepoint/syscalls/sys_enter_close")
int close_seq(struct syscall_trace_enter *ctx)
{
    return emit(VIGIL_HOOK_TRACEPOINT, (__u32)ctx->args[0]);
}

SEC("?tracepoint/syscalls/sys_enter_getpid")
int getpid_tracepoint(struct syscall_trace_enter *ctx)
{
    return emit(VIGIL_HOOK_TRACEPOINT, 0);
}

SEC("?tp_btf/sys_enter")
int BPF_PROG(getpid_tp_btf, struct pt_regs *regs, long id)
{
    if (id != 39 /* __NR_getpid on x86_64 */)
        return 0;
    return emit(VIGIL_HOOK_TP_BTF, 0);
}

/* --- one event per open by the target, from every hook kind (variant chains) --- */

SEC("?lsm/file_open")
int BPF_PROG(open_lsm, struct file *file)
{
    emit(VIGIL_HOOK_LSM, 0);
    return 0; /* allow */
}

SEC("?fentry/do_sys_openat2")
int BPF_PROG(open_fentry, int dfd)
{
    return emit(VIGIL_HOOK_FENTRY, 0);
}

SEC("?kprobe/do_sys_openat2")
int BPF_KPROBE(open_kprobe, int dfd)
{
    return emit(VIGIL_HOOK_KPROBE, 0);
}

SEC("?kprobe.multi/do_sys_openat2")
int BPF_KPROBE(open_kprobe_multi, int dfd)
{
    return emit(VIGIL_HOOK_KPROBE_MULTI, 0);
}

SEC("?tracepoint/syscalls/sys_enter_openat")
int open_tracepoint(struct syscall_trace_enter *ctx)
{
    return emit(VIGIL_HOOK_TRACEPOINT, 0);
}

SEC("?raw_tp/sys_enter")
int BPF_PROG(open_raw_tp, struct pt_regs *regs, long id)
{
    if (id != 257 /* __NR_openat on x86_64 */)
        return 0;
    return emit(VIGIL_HOOK_RAW_TP, 0);
}

SEC("?tp_btf/sys_enter")
int BPF_PROG(open_tp_btf, struct pt_regs *regs, long id)
{
    if (id != 257 /* __NR_openat on x86_64 */)
        return 0;
    return emit(VIGIL_HOOK_TP_BTF, 0);
}

/* Attached by the library to a function of a user binary. */
SEC("?uprobe")
int BPF_KPROBE(func_uprobe)
{
    return emit(VIGIL_HOOK_UPROBE, (__u32)PT_REGS_PARM1(ctx));
}

/* --- maps for the typed-map tests (never touched by the programs) --- */

struct test_value {
    __u64 count;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, struct test_value);
} test_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, struct test_value);
} test_array SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16);
    __type(key, __u64);
    __type(value, __u32);
} test_lru SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} test_percpu_hash SEC(".maps");

/* --- for the verifier-rejection test --- */

SEC("?tracepoint/syscalls/sys_enter_close")
int rejected(void *ctx)
{
    __u32 key = 1;
    struct test_value *value = bpf_map_lookup_elem(&test_hash, &key);
    return value->count; /* no NULL check: the verifier must say "invalid mem access 'map_value_or_null'" */
}
