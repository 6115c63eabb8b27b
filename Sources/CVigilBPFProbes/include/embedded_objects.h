/* VigilBPF's own feature-probe objects, from bpf/library/NAME.bpf.c (scripts/generate.sh). */
#ifndef VIGILBPF_PROBE_OBJECTS_H
#define VIGILBPF_PROBE_OBJECTS_H

/** One embedded ELF object: its name (the NAME.bpf.c it came from) and bytes. */
struct vigilbpf_probe_objects_entry {
    const char *name;
    const unsigned char *bytes;
    unsigned long size;
};

/** How many objects are embedded. */
unsigned long vigilbpf_probe_objects_count(void);

/** The object at `index`, or NULL past the end. */
const struct vigilbpf_probe_objects_entry *vigilbpf_probe_objects_at(unsigned long index);

#endif
