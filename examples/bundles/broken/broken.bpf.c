// SPDX-License-Identifier: GPL-2.0
/* A deliberately broken bundle (docs/bundles.md, ProgramBundleTests): its program reads past the
 * end of a map value, which every kernel's verifier refuses ("invalid access to map value").
 * Loading it must fail with the verifier's message and leave everything else running. Built by
 * 'make generate'; the object is committed next to this file. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct broken_event {
    __u32 pid;
    __u64 value;
};

struct broken_event *unused_broken_event __attribute__((unused));

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 12);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} small SEC(".maps");

SEC("?tracepoint/signal/signal_generate")
int broken_tp(void *ctx)
{
    __u32 key = 0;
    __u64 *value = bpf_map_lookup_elem(&small, &key);
    if (!value)
        return 0;
    struct broken_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return 0;
    e->pid = bpf_get_current_pid_tgid() >> 32;
    e->value = value[8]; /* out of bounds: the value has 8 bytes, this reads bytes 64..71 */
    bpf_ringbuf_submit(e, 0);
    return 0;
}
