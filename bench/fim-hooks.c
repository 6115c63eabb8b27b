// bench/fim-hooks.c: one program of a fim-like object alone (no Swift), for docs/fim.md's cost of
// an unwatched write: cc -O1 -o fimhooks bench/fim-hooks.c -lbpf;
// fimhooks OBJECT PROGRAM RDONLY_CAST -- CMD...  loads PROGRAM only (vigil_rdonly_cast set to
// RDONLY_CAST when the object has it; sensor.bpf.h's filter maps sized 1 as FIMSensor does),
// attaches it, runs CMD and exits with its status.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void set_flag(struct bpf_object *obj, struct bpf_map *map, char value) {
    struct btf *btf = bpf_object__btf(obj);
    int id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
    if (id < 0) return;
    const struct btf_type *sec = btf__type_by_id(btf, id);
    const struct btf_var_secinfo *vars = btf_var_secinfos(sec);
    size_t size;
    char *data = (char *)bpf_map__initial_value(map, &size);
    for (int i = 0; i < btf_vlen(sec); i++) {
        const struct btf_type *var = btf__type_by_id(btf, vars[i].type);
        if (!strcmp(btf__name_by_offset(btf, var->name_off), "vigil_rdonly_cast")) data[vars[i].offset] = value;
    }
}

int main(int argc, char **argv) {
    if (argc < 6 || strcmp(argv[4], "--")) { fprintf(stderr, "usage: %s OBJECT PROGRAM RDONLY_CAST -- CMD...\n", argv[0]); return 2; }
    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    if (!obj) { perror(argv[1]); return 1; }
    const char *filters[] = {"comm_include", "comm_exclude", "pids", "uids", "cgroups"};
    struct bpf_map *map;
    bpf_object__for_each_map(map, obj) {
        if (strstr(bpf_map__name(map), ".rodata")) set_flag(obj, map, (char)atoi(argv[3]));
        for (int i = 0; i < 5; i++) if (!strcmp(bpf_map__name(map), filters[i])) bpf_map__set_max_entries(map, 1);
    }
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, obj) bpf_program__set_autoload(prog, !strcmp(bpf_program__name(prog), argv[2]));
    if (bpf_object__load(obj)) { fprintf(stderr, "%s: load failed\n", argv[2]); return 1; }
    struct bpf_link *link = bpf_program__attach(bpf_object__find_program_by_name(obj, argv[2]));
    if (!link) { perror("attach"); return 1; }
    pid_t child = fork();
    if (child == 0) { execvp(argv[5], argv + 5); _exit(127); }
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
