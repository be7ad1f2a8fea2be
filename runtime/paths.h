/* capsule: where its own files are.  A binary run from its build tree uses the tree's files
 * (the sources' policies and executor, the build's capsule-init), wherever the build directory
 * is; an installed one uses the layout meson installed (prefix, datadir, libexecdir). */
#pragma once

#include <stdbool.h>

bool capsule_run_from_build_tree (void);
/* A data file: INSTALLED relative to the installed data directory (share/capsule), SOURCE
   relative to the source tree. */
char *capsule_data_path (const char *installed, const char *source);
/* A helper program (capsule-init): installed in libexec/capsule, built in BUILD (relative to the
   build tree). */
char *capsule_libexec_path (const char *name, const char *build);

/* Re-execute this program from a sealed in-memory copy of itself unless it already runs from one
   (CVE-2019-5736): a process in the container can reach the runtime's own binary through
   /proc/PID/exe while the runtime works inside, and container root without a user namespace
   could otherwise overwrite /usr/bin/capsule on the host.  Returns 0 in the copy, -1 (errno) when
   no copy could be made; never returns after a successful exec. */
int capsule_exec_sealed_copy (char **argv);
