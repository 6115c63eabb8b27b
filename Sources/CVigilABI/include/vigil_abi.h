/* Vigil kernel <-> userspace ABI. THE one definition of every record that crosses the ring
 * buffer, included by the bpf/ sources (after vmlinux.h) and imported by Swift (module CVigilABI).
 *
 * House rules: fixed-width fields only, explicit padding, sizes pinned with _Static_assert,
 * append-only (an incompatible change is a new event kind). Swift's MemoryLayout of every
 * struct is checked against the BTF of the compiled objects by VigilBPFTests/ABILayoutTests.
 */
#ifndef VIGIL_ABI_H
#define VIGIL_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define VIGIL_ABI_VERSION 1
#define VIGIL_COMM_LEN 16

/** Event kinds: stable numbers, never reused. */
enum vigil_event_kind {
    VIGIL_EVENT_SELFTEST = 1, /* test/benchmark event of bpf/selftest.bpf.c */
};

/** Common header of every ring-buffer record. */
struct vigil_event_header {
    __u64 ts_ns;      /* bpf_ktime_get_boot_ns() */
    __u64 cgroup_id;  /* bpf_get_current_cgroup_id(): inode of the v2 cgroup directory */
    __u32 kind;       /* enum vigil_event_kind */
    __u32 size;       /* bytes of the whole record, header included */
    __u32 pid;        /* thread group id (userspace "pid") */
    __u32 tid;        /* thread id */
    __u32 ppid;       /* real parent's tgid */
    __u32 uid;
    __u32 gid;
    __u32 cpu;        /* bpf_get_smp_processor_id() */
    char comm[VIGIL_COMM_LEN];
};
_Static_assert(sizeof(struct vigil_event_header) == 64, "vigil_event_header size");

/** Which hook kind produced a selftest event (the variant that is running). */
enum vigil_hook_kind {
    VIGIL_HOOK_TRACEPOINT = 1,
    VIGIL_HOOK_RAW_TP = 2,
    VIGIL_HOOK_TP_BTF = 3,
    VIGIL_HOOK_KPROBE = 4,
    VIGIL_HOOK_FENTRY = 5,
    VIGIL_HOOK_LSM = 6,
    VIGIL_HOOK_UPROBE = 7,
    VIGIL_HOOK_KPROBE_MULTI = 8,
};

/** VIGIL_EVENT_SELFTEST: emitted by the selftest/benchmark programs for the target process. */
struct vigil_selftest_event {
    struct vigil_event_header hdr;
    __u64 seq;        /* per-CPU sequence number of emitted events */
    __u32 hook;       /* enum vigil_hook_kind */
    __u32 arg;        /* hook-specific value (e.g. syscall argument) */
};
_Static_assert(sizeof(struct vigil_selftest_event) == 80, "vigil_selftest_event size");

/** Indexes of the per-CPU counters every sensor keeps in its `counters` map. */
enum vigil_counter {
    VIGIL_COUNTER_EMITTED = 0,  /* records submitted to the ring */
    VIGIL_COUNTER_FILTERED = 1, /* events dropped by an in-kernel filter */
    VIGIL_COUNTER_LOST = 2,     /* ring full: bpf_ringbuf_reserve failed */
    VIGIL_COUNTER_MAX = 4,
};

#endif /* VIGIL_ABI_H */
