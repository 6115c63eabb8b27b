// SPDX-License-Identifier: GPL-2.0
/* Example program bundle (docs/bundles.md): every signal the kernel generates, with the sender
 * and the target. Attach points (bundle.yaml): the signal/signal_generate tracepoint, else the
 * raw tracepoint of the same name. Each record is one struct signal_event on the ring `events`;
 * Vigil reads the struct's layout from this object's BTF, so its members are the fields
 * prog.signals.pid, prog.signals.sig, ... with no schema written anywhere else. Built by
 * 'make generate' (scripts/generate.sh); the object is committed next to this file. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct signal_event {
    __u32 pid;              /* the sender's process id (pid_field: the enricher's proc.* fields) */
    __u32 target_pid;       /* the target's process id (as the host sees it) */
    __s32 sig;              /* the signal number */
    __s32 result;           /* TRACE_SIGNAL_DELIVERED (0), IGNORED (1), ALREADY_PENDING (2), OVERFLOW_FAIL (3), LOSE_INFO (4) */
    __s32 code;             /* si_code */
    __u32 group;            /* 1: sent to the whole thread group */
    char comm[16];          /* the sender's command name */
    char target_comm[16];   /* the target's command name */
    __u64 cgroup_id;        /* the sender's cgroup v2 id (cgroup_field: container.*) */
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 18);
} events SEC(".maps");

/* Keeps struct signal_event in the BTF even where no program names it by type. */
struct signal_event *unused_signal_event __attribute__((unused));

static __always_inline int emit(int sig, int code, const char *target_comm, __u32 target_pid, int group, int result)
{
    struct signal_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return 0;
    e->pid = bpf_get_current_pid_tgid() >> 32;
    e->target_pid = target_pid;
    e->sig = sig;
    e->result = result;
    e->code = code;
    e->group = group;
    e->cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_probe_read_kernel_str(e->target_comm, sizeof(e->target_comm), target_comm);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

/* Variant `tracepoint`: the tracepoint's own record (the target's comm and pid are in it). */
SEC("?tracepoint/signal/signal_generate")
int signal_generate_tp(struct trace_event_raw_signal_generate *ctx)
{
    return emit(ctx->sig, ctx->code, ctx->comm, ctx->pid, ctx->group, ctx->result);
}

/* Variant `raw_tp`: the tracepoint's arguments (sig, info, task, group, result). */
SEC("?raw_tp/signal_generate")
int BPF_PROG(signal_generate_raw, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
    int code = info ? BPF_CORE_READ(info, si_code) : 0;
    return emit(sig, code, task->comm, BPF_CORE_READ(task, tgid), group, result);
}
