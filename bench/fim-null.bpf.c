// bench/fim-null.bpf.c: empty programs for bench/fim-hooks.c: what a syscall's exit tracepoint
// costs with a program that does nothing (sys_exit_write), and the syscall tracepoint path on
// with no program on write (sys_exit_fchown: the daemon's other sensors keep it on).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("?tracepoint/syscalls/sys_exit_write") int null_write(void *ctx) { return 0; }
SEC("?tracepoint/syscalls/sys_exit_fchown") int null_fchown(void *ctx) { return 0; }
