// SPDX-License-Identifier: GPL-2.0
/* process sensor: exec, fork/clone, exit.
 *
 * Hooks (variants chosen by VigilSensors/ProcessSensor.swift): the scheduler's BTF tracepoints
 * (tp_btf), falling back to raw tracepoints (raw_tp) with the same bodies. Neither needs tracefs
 * and neither taxes unrelated syscalls. State changes pass every filter (only Vigil's own are
 * dropped): the filters apply to them in userspace, after they updated the process table. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"
#include "sensor.bpf.h"

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_exec_event);
VIGIL_ABI_TYPE(vigil_fork_event);
VIGIL_ABI_TYPE(vigil_exit_event);
VIGIL_ABI_TYPE(vigil_filter_config);

static __always_inline int handle_exec(struct task_struct *task, struct linux_binprm *bprm)
{
    struct vigil_scratch *s;
    struct vigil_exec_event *e;
    bool truncated = false;
    __u32 pos = 0, len;
    long n;

    if (vigil_is_self())
        return 0; /* state changes are never filtered here: see vigil_filtered */
    s = vigil_scratch();
    if (!s)
        return 0;
    e = (struct vigil_exec_event *)s->event;
    vigil_fill_header(&e->hdr, VIGIL_EVENT_EXEC, 0);
    e->start_time_ns = BPF_CORE_READ(task, start_boottime);
    e->loginuid = bpf_core_field_exists(task->loginuid) ? BPF_CORE_READ(task, loginuid.val) : (__u32)-1;
    e->flags = 0;
    e->_pad = 0;
    vigil_fill_tty(task, e->tty, &e->tty_major, &e->tty_minor);

    /* filename, as given to execve */
    const char *filename = BPF_CORE_READ(bprm, filename);
    n = bpf_probe_read_kernel_str(e->data, VIGIL_FILENAME_MAX, filename);
    len = n > 0 ? n - 1 : 0;
    if (len == VIGIL_FILENAME_MAX - 1)
        e->flags |= VIGIL_EXEC_FILENAME_TRUNCATED;
    e->filename_len = len;
    pos = len;

    /* argv: the new program's arg area, NUL-separated */
    struct mm_struct *mm = BPF_CORE_READ(task, mm);
    unsigned long arg_start = BPF_CORE_READ(mm, arg_start), arg_end = BPF_CORE_READ(mm, arg_end);
    __u64 args = arg_end > arg_start ? arg_end - arg_start : 0;
    if (args > VIGIL_ARGS_MAX) {
        args = VIGIL_ARGS_MAX;
        e->flags |= VIGIL_EXEC_ARGS_TRUNCATED;
    }
    if (bpf_probe_read_user(e->data + (pos & (VIGIL_FILENAME_MAX - 1)), args & (2 * VIGIL_ARGS_MAX - 1), (void *)arg_start))
        args = 0;
    e->args_len = args;
    pos += args;

    /* cwd */
    struct path pwd = BPF_CORE_READ(task, fs, pwd);
    __u32 off = vigil_build_path(s, &pwd, &truncated);
    len = vigil_append_path(s, e->data, pos, off);
    if (truncated)
        e->flags |= VIGIL_EXEC_CWD_TRUNCATED;
    e->cwd_len = len;
    pos += len;

    __u64 size = sizeof(*e) + pos;
    e->hdr.size = size;
    vigil_output(e, size & (VIGIL_EVENT_SCRATCH - 1));
    return 0;
}

VIGIL_BTF_OR_RAW(exec, sched_process_exec, handle_exec(p, bprm),
                 struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)

static __always_inline int handle_fork(struct task_struct *parent, struct task_struct *child)
{
    struct vigil_fork_event *e;

    vigil_follow_fork(parent, child);
    if (vigil_is_self())
        return 0; /* state changes are never filtered here: see vigil_filtered */
    e = vigil_reserve(sizeof(*e));
    if (!e)
        return 0;
    vigil_fill_header(&e->hdr, VIGIL_EVENT_FORK, sizeof(*e));
    e->child_pid = BPF_CORE_READ(child, tgid);
    e->child_tid = BPF_CORE_READ(child, pid);
    e->is_thread = e->child_pid == BPF_CORE_READ(parent, tgid);
    e->child_start_time_ns = BPF_CORE_READ(child, start_boottime);
    e->_pad = 0;
    vigil_submit(e, sizeof(*e));
    return 0;
}

VIGIL_BTF_OR_RAW(fork, sched_process_fork, handle_fork(parent, child),
                 struct task_struct *parent, struct task_struct *child)

static __always_inline int handle_exit(struct task_struct *task)
{
    struct vigil_exit_event *e;
    __u64 pid_tgid = bpf_get_current_pid_tgid();

    if ((__u32)pid_tgid != pid_tgid >> 32)
        return 0; /* a thread, not the process */
    vigil_follow_exit(pid_tgid >> 32);
    if (vigil_is_self())
        return 0; /* state changes are never filtered here: see vigil_filtered */
    e = vigil_reserve(sizeof(*e));
    if (!e)
        return 0;
    vigil_fill_header(&e->hdr, VIGIL_EVENT_EXIT, sizeof(*e));
    e->start_time_ns = BPF_CORE_READ(task, start_boottime);
    e->duration_ns = e->hdr.ts_ns - e->start_time_ns;
    e->exit_code = BPF_CORE_READ(task, exit_code);
    e->_pad = 0;
    vigil_submit(e, sizeof(*e));
    return 0;
}

VIGIL_BTF_OR_RAW(exit, sched_process_exit, handle_exit(p),
                 struct task_struct *p)
