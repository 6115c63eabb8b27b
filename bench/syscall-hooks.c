// bench/syscall-hooks.c: the kernel side of the syscalls sensor alone (no Swift), for BENCHMARKS.md
// "Syscall hooks": cc -O1 -o hookbench bench/syscall-hooks.c -lbpf; hookbench OBJECT tp|btf NAME:NR... -- CMD
// Kernel side only: loads syscalls.bpf.o's per-syscall (tp) or generic (btf) programs, wants the
// syscalls given as NAME:NR, attaches, then runs the command in argv after "--".
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
int main(int argc, char **argv) {
    const char *mode = argv[2];
    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    if (!obj) return 1;
    const char *en = !strcmp(mode, "tp") ? "sys_enter_tp" : "sys_enter_tp_btf";
    const char *ex = !strcmp(mode, "tp") ? "sys_exit_tp" : "sys_exit_tp_btf";
    struct bpf_program *p;
    bpf_object__for_each_program(p, obj) {
        const char *n = bpf_program__name(p);
        bpf_program__set_autoload(p, !strcmp(n, en) || !strcmp(n, ex));
    }
    if (bpf_object__load(obj)) { fprintf(stderr, "load failed\n"); return 1; }
    unsigned long long bits[8] = {0};
    int i = 3, n = 0, links = 0, skipped = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        char name[64]; int nr;
        if (sscanf(argv[i], "%63[^:]:%d", name, &nr) != 2) continue;
        bits[nr >> 6] |= 1ULL << (nr & 63); n++;
        if (!strcmp(mode, "tp")) {
            char tp[96];
            snprintf(tp, sizeof tp, "sys_exit_%s", name);
            struct bpf_link *l = bpf_program__attach_tracepoint(bpf_object__find_program_by_name(obj, ex), "syscalls", tp);
            if (libbpf_get_error(l)) { skipped++; continue; }
            snprintf(tp, sizeof tp, "sys_enter_%s", name);
            l = bpf_program__attach_tracepoint(bpf_object__find_program_by_name(obj, en), "syscalls", tp);
            links += 2 - (libbpf_get_error(l) != 0);
        }
    }
    int zero = 0;
    bpf_map__update_elem(bpf_object__find_map_by_name(obj, "syscall_wanted"), &zero, 4, bits, 64, 0);
    if (strcmp(mode, "tp")) {
        bpf_program__attach(bpf_object__find_program_by_name(obj, en));
        bpf_program__attach(bpf_object__find_program_by_name(obj, ex));
        links = 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "mode %s: %d syscalls wanted, %d links, %d without tracepoint, attached in %.3f s\n", mode, n, links, skipped,
            (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    char cmd[4096] = "";
    for (i++; i < argc; i++) { strcat(cmd, argv[i]); strcat(cmd, " "); }
    return system(cmd);
}
