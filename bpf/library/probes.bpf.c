// SPDX-License-Identifier: GPL-2.0
/* VigilBPF's feature probes: the smallest program of each attach kind. The library loads and
 * attaches one at a time to learn what this kernel can do (Sources/VigilBPF/FeatureProbes.swift).
 * All are off by default ("?"); none emits anything. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("?tracepoint/syscalls/sys_enter_getpid")
int probe_tracepoint(void *ctx) { return 0; }

SEC("?raw_tp/sys_enter")
int probe_raw_tp(void *ctx) { return 0; }

SEC("?tp_btf/sys_enter")
int probe_tp_btf(void *ctx) { return 0; }

SEC("?kprobe")
int probe_kprobe(void *ctx) { return 0; }

SEC("?kprobe.multi/vfs_read")
int probe_kprobe_multi(void *ctx) { return 0; }

SEC("?fentry/vfs_read")
int probe_fentry(void *ctx) { return 0; }

SEC("?lsm/file_open")
int BPF_PROG(probe_lsm, struct file *file) { return 0; }

SEC("?uprobe")
int probe_uprobe(void *ctx) { return 0; }
