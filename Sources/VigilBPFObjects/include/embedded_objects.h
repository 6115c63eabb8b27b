/* Vigil's BPF objects, compiled from bpf/NAME.bpf.c and embedded (scripts/generate.sh). */
#ifndef VIGIL_OBJECTS_H
#define VIGIL_OBJECTS_H

/** One embedded ELF object: its name (the NAME.bpf.c it came from) and bytes. */
struct vigil_objects_entry {
    const char *name;
    const unsigned char *bytes;
    unsigned long size;
};

/** How many objects are embedded. */
unsigned long vigil_objects_count(void);

/** The object at `index`, or NULL past the end. */
const struct vigil_objects_entry *vigil_objects_at(unsigned long index);

#endif
