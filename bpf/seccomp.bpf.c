// SPDX-License-Identifier: GPL-2.0
/* seccomp sensor: records which syscalls each watched cgroup makes, as bits in a per-cgroup
 * record (struct vigil_seccomp_record in the `seccomp_cgroups` hash): no event per syscall. Also
 * reports syscalls a seccomp filter refused in cgroups marked VIGIL_SECCOMP_VERIFY (`vigil seccomp
 * verify`), as vigil_syscall_event records flagged VIGIL_SYSCALL_SECCOMP_DENIED.
 *
 * Hooks (VigilSensors/SeccompRecorder.swift): every syscall's entry, attached only while
 * recording. First choice (x86_64, kernels with x64_sys_call: 6.9, and stable backports such as
 * Debian's 6.1): fentry on the syscall dispatch functions x64_sys_call, ia32_sys_call and
 * x32_sys_call, which tasks reach on the fast path; else the generic sys_enter tracepoint (tp_btf,
 * else raw_tp), which sends every task on the host through the slow syscall entry while attached.
 * `verify` uses sys_enter (its sys_exit sends every task that way anyway). Then cgroup_attach_task, which finds new cgroups under a watched parent
 * (`seccomp_parents`: the next container of an image) when their first task joins, before
 * anything runs in them; the scheduler's exec tracepoint, which arms a recorded command's
 * cgroup at its exec; and, only when verifying, sys_exit.
 *
 * What a container's profile must allow is what runs under its filter: the runtime's init
 * joins the cgroup, sets up namespaces and mounts, installs the filter, makes a few more calls
 * and execs the entrypoint. So a container's cgroup records only tasks under a seccomp filter
 * (VIGIL_SECCOMP_FILTERED); one run without a filter (seccomp=unconfined) is armed at its exec.
 *
 * A refused syscall never reaches sys_enter nor x64_sys_call (the kernel runs seccomp first) but
 * does reach sys_exit: an exit whose entry this task did not make, with the filter's errno, is a
 * denial. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_seccomp_record);
VIGIL_ABI_TYPE(vigil_syscall_event);

/* This arch's numbers of the syscalls whose arguments the profile filters, set before load from
 * the syscall table (Syscalls.swift); -1: the arch has none. */
const volatile __s32 nr_clone = -1;
const volatile __s32 nr_clone3 = -1;
const volatile __s32 nr_personality = -1;
/* The errno a verified profile returns (errnoRet): an exit without an entry with -denied_errno is a denial. */
const volatile __s32 denied_errno = 1;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u64);
    __type(value, struct vigil_seccomp_record);
} seccomp_cgroups SEC(".maps");

/* Cgroups whose new children are recorded from their first exec; the value is OR'ed into the
 * new record's flags (VIGIL_SECCOMP_VERIFY). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u64);
    __type(value, __u32);
} seccomp_parents SEC(".maps");

/* Verify mode: the syscall this task entered (number + 1), cleared at its exit. */
struct entered {
    __u32 nr;
};
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct entered);
} entered SEC(".maps");

/* The denial being reported (too large for the stack). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vigil_syscall_event);
} denial SEC(".maps");

#define X32_SYSCALL_BIT 0x40000000

#if defined(__TARGET_ARCH_x86)
#define TS_COMPAT 0x0002
static __always_inline bool compat_task(struct task_struct *task)
{
    return task->thread_info.status & TS_COMPAT;
}
#define SYSCALL_NR(regs) BPF_CORE_READ((regs), orig_ax)
#else
static __always_inline bool compat_task(struct task_struct *task) { return false; }
struct user_pt_regs___arm64 { int syscallno; } __attribute__((preserve_access_index));
#define SYSCALL_NR(regs) BPF_CORE_READ((struct user_pt_regs___arm64 *)(regs), syscallno)
#endif

static __always_inline void set_bit(__u64 *words, __u32 words_count, __u64 nr)
{
    __u32 word = (nr >> 6) & (words_count - 1);
    __u64 bit = 1ULL << (nr & 63);
    /* Written only when new: a recorded loop of one syscall reads, never writes, the cache line. */
    if (!(words[word] & bit))
        __sync_fetch_and_or(&words[word], bit);
}

static __always_inline void note_arguments(struct vigil_seccomp_record *rec, struct pt_regs *regs, long id)
{
    if (id == nr_clone) {
        __u64 flags = PT_REGS_PARM1_CORE_SYSCALL(regs);
        if ((rec->clone_flags | flags) != rec->clone_flags)
            __sync_fetch_and_or(&rec->clone_flags, flags);
    } else if (id == nr_clone3) {
        __u64 flags = 0;
        /* struct clone_args starts with its flags */
        if (!bpf_probe_read_user(&flags, sizeof(flags), (void *)PT_REGS_PARM1_CORE_SYSCALL(regs))) {
            if ((rec->clone_flags | flags) != rec->clone_flags)
                __sync_fetch_and_or(&rec->clone_flags, flags);
            rec->clone3_seen = 1;
        }
    } else if (id == nr_personality) {
        __u32 persona = PT_REGS_PARM1_CORE_SYSCALL(regs);
        __u32 n = rec->personality_count;
        for (int i = 0; i < VIGIL_SECCOMP_PERSONALITIES; i++) {
            if (i >= n)
                break;
            if (rec->personality[i] == persona)
                return;
        }
        if (n < VIGIL_SECCOMP_PERSONALITIES)
            rec->personality[n & (VIGIL_SECCOMP_PERSONALITIES - 1)] = persona;
        rec->personality_count = n + 1;
    }
}

/* `task` is the current task as a BTF pointer (bpf_get_current_task_btf). */
static __always_inline void record(struct vigil_seccomp_record *rec, struct task_struct *task, struct pt_regs *regs, long id)
{
    __u32 arch;
    if (compat_task(task)) {
        arch = VIGIL_SECCOMP_ARCH_COMPAT;
        if ((__u64)id < VIGIL_SYSCALL_MAX)
            set_bit(rec->compat, VIGIL_SYSCALL_MAX / 64, id);
    } else if (id & X32_SYSCALL_BIT) {
        arch = VIGIL_SECCOMP_ARCH_X32;
        __u64 nr = id & ~(__u64)X32_SYSCALL_BIT;
        if (nr < VIGIL_SECCOMP_X32_MAX)
            set_bit(rec->x32, VIGIL_SECCOMP_X32_MAX / 64, nr);
    } else {
        arch = VIGIL_SECCOMP_ARCH_NATIVE;
        if ((__u64)id < VIGIL_SYSCALL_MAX)
            set_bit(rec->native, VIGIL_SYSCALL_MAX / 64, id);
        note_arguments(rec, regs, id);
    }
    if (!(rec->arches & arch))
        __sync_fetch_and_or(&rec->arches, arch);
}

#define SECCOMP_MODE_FILTER 2

/* Whether `task` runs under a seccomp filter (the runtime installed the container's profile). */
static __always_inline bool filtered_task(struct task_struct *task)
{
    return task->seccomp.mode == SECCOMP_MODE_FILTER;
}

/* Every syscall of the host passes here while recording: the task is fetched once (each helper
 * call is dear where return thunks are: BENCHMARKS.md) and read with plain loads. */
static __always_inline int on_enter(struct pt_regs *regs, long id)
{
    struct task_struct *task = bpf_get_current_task_btf();
    __u64 cgid = vigil_task_cgroup_id(task);
    struct vigil_seccomp_record *rec = bpf_map_lookup_elem(&seccomp_cgroups, &cgid);
    if (!rec)
        return 0;
    __u32 flags = rec->flags;
    if ((flags & VIGIL_SECCOMP_ARMED) || ((flags & VIGIL_SECCOMP_FILTERED) && filtered_task(task)))
        record(rec, task, regs, id);
    if (flags & VIGIL_SECCOMP_VERIFY) {
        struct entered *e = bpf_task_storage_get(&entered, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
        if (e)
            e->nr = (__u32)id + 1;
        else
            vigil_count(VIGIL_COUNTER_LOST);
    }
    return 0;
}

/* A task joins cgroup `dst`: a new cgroup under a watched parent is recorded from now (its
 * runtime's init joins before installing the filter and exec'ing the entrypoint; with
 * VIGIL_SECCOMP_FILTERED only what runs under the filter counts). */
static __always_inline int on_attach(struct cgroup *dst)
{
    /* The hierarchy whose ids the sensor uses: the default one (id 0), or v1's pids. */
    if (vigil_cgroup_hierarchy == 1) {
        int pids = bpf_core_enum_value(enum cgroup_subsys_id, pids_cgrp_id);
        if (!(BPF_CORE_READ(dst, root, subsys_mask) & (1 << pids)))
            return 0;
    } else if (BPF_CORE_READ(dst, root, hierarchy_id) != 0) {
        return 0;
    }
    struct cgroup_subsys_state *parent = BPF_CORE_READ(dst, self.parent);
    if (!parent)
        return 0;
    __u64 parent_id = BPF_CORE_READ(parent, cgroup, kn, id);
    __u32 *extra = bpf_map_lookup_elem(&seccomp_parents, &parent_id);
    if (!extra)
        return 0;
    __u64 cgid = BPF_CORE_READ(dst, kn, id);
    struct vigil_seccomp_record fresh = {};
    fresh.flags = VIGIL_SECCOMP_DISCOVERED | VIGIL_SECCOMP_FILTERED | (*extra & VIGIL_SECCOMP_VERIFY);
    /* BPF_NOEXIST: a second task joining (another hierarchy's attach, docker exec) changes nothing. */
    if (bpf_map_update_elem(&seccomp_cgroups, &cgid, &fresh, BPF_NOEXIST) && !bpf_map_lookup_elem(&seccomp_cgroups, &cgid))
        vigil_count(VIGIL_COUNTER_LOST); /* the map is full */
    return 0;
}

/* Whether `bprm` is a program executing itself again through /proc/self/ (runc starts the
 * container's init as `/proc/self/exe init`; newer runcs exec a sealed copy as /proc/self/fd/N). */
static __always_inline bool reexec(struct linux_binprm *bprm)
{
    static const char prefix[] = "/proc/self/";
    char name[sizeof(prefix)] = {};
    if (bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(bprm, filename)) < (long)sizeof(prefix))
        return false;
#pragma unroll
    for (int i = 0; i < sizeof(prefix) - 1; i++)
        if (name[i] != prefix[i])
            return false;
    return true;
}

/* An exec in a watched cgroup: a command's (no filter) arms the cgroup, every task recorded from
 * here; so does a container's entrypoint that runs without a filter (seccomp=unconfined). Not
 * the runtime re-executing itself into the container's init: its parent moves it into the
 * cgroup while it may still be in that exec, and its setup (mounts, namespaces, keyrings) would
 * then be recorded as the container's. */
static __always_inline int on_exec(struct linux_binprm *bprm)
{
    struct task_struct *task = bpf_get_current_task_btf();
    __u64 cgid = vigil_task_cgroup_id(task);
    struct vigil_seccomp_record *rec = bpf_map_lookup_elem(&seccomp_cgroups, &cgid);
    if (!rec)
        return 0;
    __u32 flags = rec->flags;
    if (flags & (VIGIL_SECCOMP_ARMED | VIGIL_SECCOMP_IGNORED))
        return 0;
    if ((flags & VIGIL_SECCOMP_FILTERED) && filtered_task(task))
        return 0; /* recorded per task already, its exec included */
    if ((flags & VIGIL_SECCOMP_FILTERED) && reexec(bprm))
        return 0; /* a container runtime becoming the container's init */
    __sync_fetch_and_or(&rec->flags, VIGIL_SECCOMP_ARMED);
    /* The exec that armed the cgroup entered before it was armed: its own number (execve or
     * execveat) is in the saved user registers. */
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
    long id = SYSCALL_NR(regs);
    record(rec, task, regs, id);
    return 0;
}

static __always_inline int on_exit(struct pt_regs *regs, long id, long ret)
{
    struct task_struct *task = bpf_get_current_task_btf();
    __u64 cgid = vigil_task_cgroup_id(task);
    struct vigil_seccomp_record *rec = bpf_map_lookup_elem(&seccomp_cgroups, &cgid);
    if (!rec || !(rec->flags & VIGIL_SECCOMP_VERIFY))
        return 0;
    struct entered *e = bpf_task_storage_get(&entered, task, 0, 0);
    if (e && e->nr == (__u32)id + 1) {
        e->nr = 0;
        return 0;
    }
    if (e)
        e->nr = 0;
    if (ret != -(long)denied_errno)
        return 0;
    __u32 zero = 0;
    struct vigil_syscall_event *d = bpf_map_lookup_elem(&denial, &zero);
    if (!d)
        return 0;
    vigil_fill_header(&d->hdr, VIGIL_EVENT_SYSCALL, sizeof(*d));
    d->latency_ns = 0;
    d->ret = ret;
    d->args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
    d->args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
    d->args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
    d->args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
    d->args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);
    d->args[5] = 0;
    d->nr = id;
    d->flags = VIGIL_SYSCALL_SECCOMP_DENIED;
    d->data_len = 0;
    for (int i = 0; i < VIGIL_SYSCALL_ARGS; i++)
        d->arg_len[i] = 0;
    d->arg_truncated = 0;
    d->arg_failed = 0;
    d->_pad = 0;
    /* A compat task's numbers are another table's: not named by this one, so reported as is. */
    if (compat_task(task))
        d->flags |= VIGIL_SYSCALL_COMPAT;
    vigil_output(d, sizeof(*d));
    return 0;
}

VIGIL_BTF_OR_RAW(seccomp_enter, sys_enter, on_enter(regs, id),
                 struct pt_regs *regs, long id)

#if defined(__TARGET_ARCH_x86)
/* The syscall dispatch (6.9+ and backports): `nr` is the number within its table, past seccomp
 * and the syscall tracepoint, for numbers the table has (a number past it is not dispatched, so
 * not recorded here: the kernel answers ENOSYS). record() tells a compat task by TS_COMPAT, set
 * before ia32_sys_call; x32_sys_call gets the number without the x32 bit, put back here. */
SEC("?fentry/x64_sys_call")
int BPF_PROG(seccomp_enter_x64, struct pt_regs *regs, unsigned int nr)
{
    return on_enter(regs, nr);
}

SEC("?fentry/ia32_sys_call")
int BPF_PROG(seccomp_enter_ia32, struct pt_regs *regs, unsigned int nr)
{
    return on_enter(regs, nr);
}

SEC("?fentry/x32_sys_call")
int BPF_PROG(seccomp_enter_x32, struct pt_regs *regs, unsigned int nr)
{
    return on_enter(regs, (long)(nr | X32_SYSCALL_BIT));
}
#endif

VIGIL_BTF_OR_RAW(seccomp_exec, sched_process_exec, on_exec(bprm),
                 struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)

VIGIL_BTF_OR_RAW(seccomp_attach, cgroup_attach_task, on_attach(dst),
                 struct cgroup *dst, const char *path, struct task_struct *task, bool threadgroup)

VIGIL_BTF_OR_RAW(seccomp_exit, sys_exit, on_exit(regs, SYSCALL_NR(regs), ret),
                 struct pt_regs *regs, long ret)
