/* Helpers shared by every Vigil sensor: the per-CPU counters, the event ring with batched
 * wakeups, and the common event header. Include after vmlinux.h and the libbpf headers. */
#ifndef VIGIL_BPF_H
#define VIGIL_BPF_H

#include "vigil_abi.h"

/* The event ring. Userspace sets its size before load (bpf_map__set_max_entries). */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Per-CPU counters, indexed by enum vigil_counter: nothing is dropped without a count. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, VIGIL_COUNTER_MAX);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

/* Records the BTF of an ABI struct in the object (BTF keeps no types of local variables), so
 * userspace can check its layout against Swift's (ABILayoutTests). */
#define VIGIL_ABI_TYPE(name) const struct name *__vigil_abi_##name __attribute__((unused))

VIGIL_ABI_TYPE(vigil_event_header);

/* Two programs from one body, for a hook that runs on a BTF tracepoint where those attach, else
 * on the raw tracepoint (Swift's Hook.btfOrRaw loads one of them): NAME_tp_btf on tp_btf/TP and
 * NAME_raw_tp on raw_tp/TP, each taking the tracepoint's arguments ARGS (as BPF_PROG declares
 * them) and returning CALL, an expression of them. Include after bpf_tracing.h. */
#define VIGIL_BTF_OR_RAW(name, tp, call, args...)       \
    SEC("?tp_btf/" #tp)                                 \
    int BPF_PROG(name##_tp_btf, ##args) { return call; } \
    SEC("?raw_tp/" #tp)                                 \
    int BPF_PROG(name##_raw_tp, ##args) { return call; }

/* Wake the reader only once this many bytes wait in the ring; below it the reader drains on its
 * own timer (see notes/performance.md: per-record wakeups dominate the cost). 0 = the kernel's
 * default policy. */
const volatile __u64 vigil_wakeup_bytes = 0;

/* Bytes of the ring kept for the high lane: exec, fork, exit, file integrity, seccomp, the
 * heartbeat and opens a rule matched in the kernel. A low-lane record (syscall events,
 * connections, opens passed for userspace to decide) that would leave less free is refused and
 * counted lost, so a flood of them cannot crowd out the events that matter. 0: no reserve. */
const volatile __u64 vigil_lane_reserve_bytes = 0;

/* The ring's size in bytes, set with the reserve (the reserve's check then needs no
 * bpf_ringbuf_query for it); 0: asked of the ring. */
const volatile __u64 vigil_ring_bytes = 0;

static __always_inline void vigil_count(__u32 counter)
{
    __u64 *value = bpf_map_lookup_elem(&counters, &counter);
    if (value)
        *value += 1;
}

/* Reserve a record of `size` bytes in the ring, or count it as lost. */
static __always_inline void *vigil_reserve(__u64 size)
{
    void *record = bpf_ringbuf_reserve(&events, size, 0);
    if (!record)
        vigil_count(VIGIL_COUNTER_LOST);
    return record;
}

/* Whether a low-lane record of `size` bytes (plus its 8-byte ring header) would eat into the
 * high lane's reserve, given `used` bytes waiting in the ring; counted lost when it would. */
static __always_inline bool vigil_low_lane_full_with(__u64 used, __u64 size)
{
    if (!vigil_lane_reserve_bytes)
        return false;
    __u64 ring = vigil_ring_bytes ? vigil_ring_bytes : bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
    if (used + size + 8 + vigil_lane_reserve_bytes <= ring)
        return false;
    vigil_count(VIGIL_COUNTER_LOST);
    return true;
}

/* The bytes waiting in the ring, when the lane check or the wakeup policy needs them (each
 * bpf_ringbuf_query is a helper call); else 0. */
static __always_inline __u64 vigil_ring_used(void)
{
    return vigil_lane_reserve_bytes || vigil_wakeup_bytes ? bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) : 0;
}

/* vigil_low_lane_full_with the bytes waiting now. */
static __always_inline bool vigil_low_lane_full(__u64 size)
{
    return vigil_lane_reserve_bytes && vigil_low_lane_full_with(bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA), size);
}

/* `vigil_reserve` for a low-lane record: NULL (counted lost) when the reserve would be used. */
static __always_inline void *vigil_reserve_low(__u64 size)
{
    return vigil_low_lane_full(size) ? NULL : vigil_reserve(size);
}

/* Wakeup policy for a record of `size` bytes, given `waiting` bytes in the ring. With a
 * threshold: no wakeup below it, one forced wakeup for the record that crosses it, none above it
 * (the reader is awake or its timer will drain). Without one: the kernel's default (wake a reader
 * that has caught up). */
static __always_inline __u64 vigil_wakeup_flags_with(__u64 waiting, __u64 size)
{
    if (!vigil_wakeup_bytes)
        return 0;
    if (waiting < vigil_wakeup_bytes && waiting + size >= vigil_wakeup_bytes)
        return BPF_RB_FORCE_WAKEUP;
    return BPF_RB_NO_WAKEUP;
}

/* vigil_wakeup_flags_with the bytes waiting now. */
static __always_inline __u64 vigil_wakeup_flags(__u64 size)
{
    return vigil_wakeup_bytes ? vigil_wakeup_flags_with(bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA), size) : 0;
}

/* Submit a reserved record of `size` bytes. */
static __always_inline void vigil_submit(void *record, __u64 size)
{
    bpf_ringbuf_submit(record, vigil_wakeup_flags(size));
    vigil_count(VIGIL_COUNTER_EMITTED);
}

/* Copy a record built elsewhere (a per-CPU scratch buffer) into the ring with wakeup `flags`, or
 * count it lost. */
static __always_inline void vigil_output_flags(void *record, __u64 size, __u64 flags)
{
    if (bpf_ringbuf_output(&events, record, size, flags))
        vigil_count(VIGIL_COUNTER_LOST);
    else
        vigil_count(VIGIL_COUNTER_EMITTED);
}

/* Copy a record built elsewhere into the ring, or count it lost; `now` wakes the reader at once
 * (an event a rule matched in the kernel), else the wakeup policy decides. */
static __always_inline void vigil_output_wake(void *record, __u64 size, bool now)
{
    vigil_output_flags(record, size, now ? BPF_RB_FORCE_WAKEUP : vigil_wakeup_flags(size));
}

/* Copy a record built elsewhere (a per-CPU scratch buffer) into the ring, or count it lost. */
static __always_inline void vigil_output(void *record, __u64 size)
{
    vigil_output_wake(record, size, false);
}

/* `vigil_output` for a low-lane record: refused (counted lost) when the reserve would be used.
 * One query of the ring serves both the lane check and the wakeup policy. */
static __always_inline void vigil_output_low(void *record, __u64 size)
{
    __u64 used = vigil_ring_used();
    if (vigil_low_lane_full_with(used, size))
        return;
    vigil_output_flags(record, size, vigil_wakeup_flags_with(used, size));
}

/* Inode number of the task's active pid namespace. The task is a BTF pointer (bpf_get_current_task_btf):
 * a host process's (level 0, most events) is read with plain loads; a deeper level indexes the
 * pid's numbers[] by a variable, which the verifier allows only through probe reads. */
static __always_inline __u32 vigil_task_pid_ns(struct task_struct *task)
{
    struct pid *tpid = task->thread_pid;
    if (tpid && tpid->level == 0)
        return tpid->numbers[0].ns->ns.inum;
    struct pid *pid = BPF_CORE_READ(task, thread_pid);
    unsigned int level = BPF_CORE_READ(pid, level);
    struct upid upid = {};
    bpf_probe_read_kernel(&upid, sizeof(upid), &pid->numbers[level & 31]);
    return BPF_CORE_READ(upid.ns, ns.inum);
}

/* The hierarchy whose cgroup ids the header's cgroup_id and the cgroup filter carry, set before
 * load: 0, the v2 hierarchy (what bpf_get_current_cgroup_id returns); 1, the v1 hierarchy of the pids
 * controller, for hosts whose v2 hierarchy holds no containers (v1 only, or a runtime that does
 * not join the unified tree). Each is the inode of the task's cgroup directory in that hierarchy. */
const volatile __u32 vigil_cgroup_hierarchy = 0;

/* The cgroup id of `task` (a BTF pointer), by plain loads: bpf_get_current_cgroup_id's
 * cgroup_id(task_dfl_cgroup(current)) without the helper call. */
static __always_inline __u64 vigil_task_cgroup_id(struct task_struct *task)
{
    if (vigil_cgroup_hierarchy == 1) {
        int pids = bpf_core_enum_value(enum cgroup_subsys_id, pids_cgrp_id);
        return BPF_CORE_READ(task, cgroups, subsys[pids], cgroup, kn, id);
    }
    return task->cgroups->dfl_cgrp->kn->id;
}

/* The task's comm, NUL padded as bpf_get_current_comm leaves it, by byte loads (the verifier
 * refuses wider loads inside a char array of a BTF pointer; sixteen loads cost less than the
 * helper call). */
static __always_inline void vigil_task_comm(struct task_struct *task, char comm[VIGIL_COMM_LEN])
{
    bool ended = false;
#pragma unroll
    for (int i = 0; i < VIGIL_COMM_LEN; i++) {
        char c = ended ? 0 : task->comm[i];
        ended = ended || c == 0;
        comm[i] = c;
    }
}

/* Fill the common header for `task`, the current task as a BTF pointer (bpf_get_current_task_btf).
 * Plain loads wherever the task's fields serve (pid, tgid, credentials, namespaces, cgroup, comm):
 * on CPUs whose return-thunk mitigations make each helper call dear (SRSO "Safe RET", ~30-40 ns a
 * call), the helpers were most of what an emitted event cost (BENCHMARKS.md). */
static __always_inline void vigil_fill_task_header(struct vigil_event_header *hdr, struct task_struct *task, __u32 kind, __u32 size)
{
    const struct cred *cred = task->cred;

    hdr->ts_ns = bpf_ktime_get_boot_ns();
    hdr->cgroup_id = vigil_task_cgroup_id(task);
    hdr->kind = kind;
    hdr->size = size;
    hdr->pid = task->tgid;
    hdr->tid = task->pid;
    hdr->ppid = task->real_parent->tgid;
    hdr->uid = cred->uid.val;
    hdr->gid = cred->gid.val;
    hdr->cpu = bpf_get_smp_processor_id();
    hdr->mnt_ns = task->nsproxy->mnt_ns->ns.inum;
    hdr->pid_ns = vigil_task_pid_ns(task);
    vigil_task_comm(task, hdr->comm);
}

/* Fill the common header for the current task. */
static __always_inline void vigil_fill_header(struct vigil_event_header *hdr, __u32 kind, __u32 size)
{
    vigil_fill_task_header(hdr, bpf_get_current_task_btf(), kind, size);
}

/* The task's controlling tty: its name (e.g. "pts0", NUL padded) and device numbers, zeros when
 * it has none. */
static __always_inline void vigil_fill_tty(struct task_struct *task, char tty_name[VIGIL_TTY_LEN], __u32 *major, __u32 *minor)
{
    *major = 0;
    *minor = 0;
    __builtin_memset(tty_name, 0, VIGIL_TTY_LEN);
    struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);
    if (tty) {
        bpf_probe_read_kernel_str(tty_name, VIGIL_TTY_LEN, &tty->name);
        *major = BPF_CORE_READ(tty, driver, major);
        *minor = BPF_CORE_READ(tty, driver, minor_start) + BPF_CORE_READ(tty, index);
    }
}

/* The file behind descriptor `fd` of the current task, or NULL. */
static __always_inline struct file *vigil_fd_file(__s32 fd)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    unsigned int max = BPF_CORE_READ(fdt, max_fds);
    if (fd < 0 || (unsigned int)fd >= max)
        return NULL;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = NULL;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    return file;
}

/* bpf_rdonly_cast (kfunc, 6.2+; the verifier makes it a move): a kernel address held as a number
 * becomes a typed, read-only pointer whose member loads are plain fault-safe loads, no helper
 * call. Weak: absent before 6.2, where code using it must be left out (vigil_rdonly_cast). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* Set by userspace before load when the kernel has bpf_rdonly_cast; while false the verifier
 * removes the code that calls it. */
const volatile bool vigil_rdonly_cast = false;

/* vigil_fd_file for `task` (bpf_get_current_task_btf) where vigil_rdonly_cast holds, with no
 * helper call: the fd table by plain loads; its slot fds[fd] (a variable index the verifier
 * refuses on a typed pointer) cast to a struct whose first member is a pointer (callback_head:
 * in every kernel) and read through it; the file typed, so its members are plain loads too. */
static __always_inline struct file *vigil_fd_file_typed(struct task_struct *task, __s32 fd)
{
    struct fdtable *fdt = task->files->fdt;
    if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
        return NULL;
    struct callback_head *slot = bpf_rdonly_cast(&fdt->fd[fd], bpf_core_type_id_kernel(struct callback_head));
    struct callback_head *file = slot->next;
    if (!file)
        return NULL;
    return bpf_rdonly_cast(file, bpf_core_type_id_kernel(struct file));
}

/* The current task's saved user registers: a syscall's arguments, read at its exit tracepoint
 * (one program per syscall instead of an entry and an exit program with a map between them)
 * with VIGIL_SYSCALL_ARG0..5. */
static __always_inline struct pt_regs *vigil_user_regs(void)
{
    return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* A syscall's arguments 0-5 and its number (negative: no syscall) in saved user registers (vigil_user_regs, a BTF pointer: plain loads,
 * relocated by CO-RE). The one place that names registers: x86_64 passes di si dx r10 r8 r9;
 * arm64 passes x0-x5, but x0 holds the result once the syscall returned, so the first argument
 * is the copy the kernel saved at entry (orig_x0). */
#if defined(__TARGET_ARCH_x86)
#define VIGIL_SYSCALL_ARG0(user_regs) ((user_regs)->di)
#define VIGIL_SYSCALL_ARG1(user_regs) ((user_regs)->si)
#define VIGIL_SYSCALL_ARG2(user_regs) ((user_regs)->dx)
#define VIGIL_SYSCALL_ARG3(user_regs) ((user_regs)->r10)
#define VIGIL_SYSCALL_ARG4(user_regs) ((user_regs)->r8)
#define VIGIL_SYSCALL_ARG5(user_regs) ((user_regs)->r9)
#define VIGIL_SYSCALL_NR(user_regs) ((long)(user_regs)->orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define VIGIL_SYSCALL_ARG0(user_regs) ((user_regs)->orig_x0)
#define VIGIL_SYSCALL_ARG1(user_regs) ((user_regs)->regs[1])
#define VIGIL_SYSCALL_ARG2(user_regs) ((user_regs)->regs[2])
#define VIGIL_SYSCALL_ARG3(user_regs) ((user_regs)->regs[3])
#define VIGIL_SYSCALL_ARG4(user_regs) ((user_regs)->regs[4])
#define VIGIL_SYSCALL_ARG5(user_regs) ((user_regs)->regs[5])
#define VIGIL_SYSCALL_NR(user_regs) ((long)(user_regs)->syscallno)
#else
#error "bpf/lib/vigil.bpf.h: syscall arguments are mapped for x86_64 and arm64 only (__TARGET_ARCH_x86 or __TARGET_ARCH_arm64)"
#endif

/* A syscall's six arguments from saved user registers `user_regs` into `args`: the same at
 * entry and at exit (arm64's first from orig_x0). */
static __always_inline void vigil_syscall_args(__u64 *args, struct pt_regs *user_regs)
{
    args[0] = VIGIL_SYSCALL_ARG0(user_regs);
    args[1] = VIGIL_SYSCALL_ARG1(user_regs);
    args[2] = VIGIL_SYSCALL_ARG2(user_regs);
    args[3] = VIGIL_SYSCALL_ARG3(user_regs);
    args[4] = VIGIL_SYSCALL_ARG4(user_regs);
    args[5] = VIGIL_SYSCALL_ARG5(user_regs);
}

#endif /* VIGIL_BPF_H */
