/* capsule: namespace flags, id maps and joining namespaces by path. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "spec.h"

/* CLONE_NEW* flags of the namespaces the spec asks to create (entries without a path). */
int namespaces_new_flags (const struct spec *s);
/* True when some namespace is joined by path. */
bool namespaces_any_path (const struct spec *s);
/* Write uid_map and gid_map of PID from the spec. */
int namespaces_write_idmaps (pid_t pid, const struct spec *s, capsule_error **err);
/* An fd of a new user namespace with these maps, for an idmapped mount (a short-lived child
 * makes it); -1 and *err on failure. */
int namespaces_userns_fd (const struct spec_idmap *uid, size_t n_uid, const struct spec_idmap *gid,
                          size_t n_gid, capsule_error **err);
/* Text of an id map, "0 100000 65536\n..." (for tests). */
char *namespaces_idmap_text (const struct spec_idmap *maps, size_t n);
/* In the child: join every namespace given by path, the user namespace last. */
int namespaces_join_paths (const struct spec *s, capsule_error **err);
/* Is container uid/gid 0 mapped (so the process can become root inside)? */
bool namespaces_maps_root (const struct spec_idmap *maps, size_t n);
