/* capsule: container lifecycle.
 *
 * create: the runtime records the container (state dir, cgroup), compiles seccomp, clones the
 * container process into its namespaces, writes its id maps, and talks to it over one sync socket
 * until the process has built its filesystem, dropped its privileges and blocks on exec.fifo.
 * start writes one byte to the fifo; the process then execs.  Everything made is undone when any
 * step fails, and `delete` undoes whatever an interrupted create left behind. */
#define _GNU_SOURCE
#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "hooks.h"
#include "mounts.h"
#include "namespaces.h"
#include "netlink.h"
#include "paths.h"
#include "process.h"
#include "seccomp-filter.h"
#include "sync.h"
#include "terminal.h"
#include "utils.h"

struct creation
{
  const struct container_opts *o;
  struct spec *spec;
  struct cgroup *cg;
  struct container_state *st;
  struct seccomp_program seccomp;
  char *dir;
  int sync[2];
  int fifo_fd;
  int console_fd;   /* the container sends its pty master here */
  int console_recv; /* run's own end of it, when no --console-socket was given */
  int *bind_trees;  /* user namespace: the runtime's copies of bind sources (mounts.h) */
  pid_t parent;
  pid_t child; /* what clone returned */
  pid_t pid;   /* the container process (differs from child after a double fork) */
  bool dir_made;
  bool fast; /* one clone3 makes every namespace */
  /* v1: the container's process joins its cgroups itself (cgroup.h), through these; a cgroup
     namespace it should have is made after that, so that its cgroups are its root */
  int tasks_fds[8];
  bool self_join, cgroupns_late;
};

static void
creation_release (struct creation *c)
{
  if (c->sync[0] >= 0)
    close (c->sync[0]);
  if (c->sync[1] >= 0)
    close (c->sync[1]);
  if (c->fifo_fd >= 0)
    close (c->fifo_fd);
  if (c->console_fd >= 0)
    close (c->console_fd);
  if (c->console_recv >= 0)
    close (c->console_recv);
  cgroup_v1_close_tasks (c->tasks_fds);
  seccomp_program_release (&c->seccomp);
  if (c->spec)
    mounts_close_bind_trees (c->bind_trees, c->spec->n_mounts);
  cgroup_free (c->cg);
  state_free (c->st);
  spec_free (c->spec);
  free (c->dir);
}

/* ---------------------------------------------------------------- the container process */

static void
child_become_root (struct creation *c)
{
  const struct spec *s = c->spec;
  const struct spec_namespace *user = spec_namespace (s, CLONE_NEWUSER);
  if (user == NULL)
    return;
  if (user->path)
    {
      /* a joined user namespace: its maps are not ours to read; root there when it has one,
         as runc (else our unmapped host ids would make nothing we create ownable) */
      setresgid (0, 0, 0);
      setresuid (0, 0, 0);
      return;
    }
  if (namespaces_maps_root (s->gid_mappings, s->n_gid_mappings))
    setresgid (0, 0, 0);
  if (namespaces_maps_root (s->uid_mappings, s->n_uid_mappings))
    setresuid (0, 0, 0);
}

static int
child_namespaces (struct creation *c, capsule_error **err)
{
  const struct spec *s = c->spec;
  int flags = namespaces_new_flags (s);
  struct sync_msg m;
  if (c->fast)
    return sync_recv (c->sync[1], SYNC_GO, &m, err);
  if (namespaces_join_paths (s, err) < 0)
    return -1;
  if (flags & CLONE_NEWUSER)
    {
      if (unshare (CLONE_NEWUSER) < 0)
        return capsule_error_make (err, errno, "create user namespace");
      if (sync_send (c->sync[1], SYNC_USERNS, 0, err) < 0)
        return -1;
    }
  if (sync_recv (c->sync[1], SYNC_GO, &m, err) < 0)
    return -1;
  child_become_root (c);
  if (unshare (flags & ~CLONE_NEWUSER) < 0)
    return capsule_error_make (err, errno, "create namespaces");
  if ((flags & CLONE_NEWPID) || spec_namespace (s, CLONE_NEWPID))
    {
      /* a new (or joined) pid namespace takes effect for children only */
      pid_t pid = fork ();
      if (pid < 0)
        return capsule_error_make (err, errno, "fork into the pid namespace");
      if (pid > 0)
        {
          sync_send (c->sync[1], SYNC_PID, pid, NULL);
          _exit (0);
        }
    }
  return 0;
}

static int
child_hooks_in_parent (struct creation *c, int64_t *ret_pid, capsule_error **err)
{
  const struct spec *s = c->spec;
  struct sync_msg m;
  *ret_pid = 0;
  /* no hooks to run, and none that needs the pid: no round trip */
  if (s->n_hooks[HOOK_PRESTART] + s->n_hooks[HOOK_CREATE_RUNTIME]
          + s->n_hooks[HOOK_CREATE_CONTAINER]
      == 0)
    return 0;
  if (sync_send (c->sync[1], SYNC_HOOKS, 0, err) < 0
      || sync_recv (c->sync[1], SYNC_HOOKS_DONE, &m, err) < 0)
    return -1;
  *ret_pid = m.value;
  return 0;
}

static int
child_sysctl (const struct spec *s, capsule_error **err)
{
  for (size_t i = 0; i < s->n_sysctl; i++)
    {
      _cleanup_free_ char *path = xasprintf ("/proc/sys/%s", s->sysctl_keys[i]);
      for (char *p = path + strlen ("/proc/sys/"); *p; p++)
        if (*p == '.')
          *p = '/';
      /* /proc/sys/kernel/domainname belongs to the host's root even in a uts namespace of a
         user namespace's; the system call is the namespace's own. */
      if (strcmp (s->sysctl_keys[i], "kernel.domainname") == 0)
        {
          const char *v = s->sysctl_values[i];
          if (setdomainname (v, strlen (v)) < 0)
            return capsule_error_make (err, errno, "linux.sysctl.kernel.domainname: set \"%s\"", v);
          continue;
        }
      if (write_knob (AT_FDCWD, path, s->sysctl_values[i], err) < 0)
        return capsule_error_wrap (err, "linux.sysctl.%s", s->sysctl_keys[i]);
    }
  return 0;
}

static int
child_filesystem (struct creation *c, int64_t pid, capsule_error **err)
{
  const struct spec *s = c->spec;
  int flags = namespaces_new_flags (s);
  struct mounts_ctx m = {
    .spec = s,
    .cgroup = c->cg,
    .userns = spec_namespace (s, CLONE_NEWUSER) != NULL,
    .netns = (flags & CLONE_NEWNET) != 0,
    .cgroupns = spec_namespace (s, CLONE_NEWCGROUP) != NULL,
    .bind_trees = c->bind_trees,
  };
  if (mounts_prepare_rootfs (&m, err) < 0)
    return -1;
  /* the runtime's copies of bind sources are mounted or unneeded: hold nothing more */
  mounts_close_bind_trees (c->bind_trees, s->n_mounts);
  c->bind_trees = NULL;
  if (s->n_hooks[HOOK_CREATE_CONTAINER])
    {
      c->st->pid = pid;
      _cleanup_free_ char *json = state_json (c->st, STATUS_CREATING, false);
      if (hooks_run (s, HOOK_CREATE_CONTAINER, json, err) < 0)
        return -1;
    }
  if (mounts_pivot (s, err) < 0 || child_sysctl (s, err) < 0
      || process_make_cwd (s->process, err) < 0 || mounts_finish (&m, err) < 0)
    return -1;
  return 0;
}

static int
child_null_stdio (capsule_error **err)
{
  int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0)
    return capsule_error_make (err, errno, "open /dev/null in the container");
  for (int std = 0; std < 3; std++)
    if (dup2 (null, std) < 0)
      return capsule_error_make (err, errno, "dup2 /dev/null");
  if (null > 2)
    close (null);
  return 0;
}

static int
child_setup (struct creation *c, char **ret_exe, capsule_error **err)
{
  const struct spec *s = c->spec;
  int flags = namespaces_new_flags (s);
  int64_t pid = 0;
  struct sync_msg m;

  if (c->fast)
    child_become_root (c);
  if ((flags & CLONE_NEWNET) && netlink_loopback_up (err) < 0)
    return capsule_error_wrap (err, "network namespace");
  if ((flags & CLONE_NEWUTS) && s->hostname && sethostname (s->hostname, strlen (s->hostname)) < 0)
    return capsule_error_make (err, errno, "hostname: set \"%s\"", s->hostname);
  if ((flags & CLONE_NEWUTS) && s->domainname
      && setdomainname (s->domainname, strlen (s->domainname)) < 0)
    return capsule_error_make (err, errno, "domainname: set \"%s\"", s->domainname);
  if (child_hooks_in_parent (c, &pid, err) < 0 || child_filesystem (c, pid, err) < 0)
    return -1;
  /* The container's own /dev/null, not the host's: a checkpoint can then find the file in the
     container's mounts. */
  if (c->o->null_stdio && child_null_stdio (err) < 0)
    return -1;
  if (c->console_fd >= 0 && terminal_setup_child (c->console_fd, err) < 0)
    return -1;
  c->console_fd = -1;
  process_set_home (s->process);
  if (s->has_mempolicy
      && syscall (SYS_set_mempolicy, s->mempolicy_mode,
                  s->mempolicy_has_nodes ? s->mempolicy_nodes : NULL,
                  s->mempolicy_has_nodes ? SPEC_MAX_NUMA_NODES + 1 : 0)
             < 0)
    return capsule_error_make (err, errno, "linux.memoryPolicy: set_mempolicy");
  if (process_set_rlimits (s->process, err) < 0)
    return -1;
  *ret_exe = process_find_executable (s->process, err);
  if (*ret_exe == NULL)
    return -1;
  if (process_drop_privileges (s->process, &c->seccomp, err) < 0
      || process_chdir (s->process, err) < 0)
    return -1;
  if (sync_send (c->sync[1], SYNC_READY, 0, err) < 0
      || sync_recv (c->sync[1], SYNC_DONE, &m, err) < 0)
    return -1;
  /* The runtime has recorded us; from here we must outlive it. */
  prctl (PR_SET_PDEATHSIG, 0, 0, 0, 0);
  return sync_send (c->sync[1], SYNC_ACK, 0, err);
}

static int
child_wait_start (struct creation *c, capsule_error **err)
{
  char byte;
  ssize_t r;
  do
    r = read (c->fifo_fd, &byte, 1);
  while (r < 0 && errno == EINTR);
  if (r != 1)
    return capsule_error_make (err, errno, "wait for start on exec.fifo");
  /* The fd stays open (it is CLOEXEC): `start` watches for its last reader to go at exec. */
  return 0;
}

static _Noreturn void
child_main (struct creation *c)
{
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_free_ char *exe = NULL;
  int fd = c->sync[1];

  close (c->sync[0]);
  c->sync[0] = -1;
  if (c->console_recv >= 0)
    close (c->console_recv);
  c->console_recv = -1;
  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* The parent may have died before PDEATHSIG was armed.  (In a new pid namespace the parent is
     outside it and getppid() says 0.) */
  if (getppid () != c->parent && getppid () != 0)
    _exit (1);
  process_reset_signals ();
  /* into its cgroups first, by itself (still one thread), then its cgroup namespace */
  if (c->self_join && cgroup_v1_join_self (c->tasks_fds, &err) < 0)
    sync_fail (fd, err);
  if (c->cgroupns_late && unshare (CLONE_NEWCGROUP) < 0)
    {
      capsule_error_make (&err, errno, "create the cgroup namespace");
      sync_fail (fd, err);
    }
  /* A session of its own: nothing ties the container to the caller's terminal session (and
     criu can dump it whole). */
  setsid ();
  if (child_namespaces (c, &err) < 0 || child_setup (c, &exe, &err) < 0)
    sync_fail (fd, err);
  close (fd);
  c->sync[1] = -1;
  if (child_wait_start (c, &err) < 0)
    goto fail;
  if (c->spec->n_hooks[HOOK_START_CONTAINER])
    {
      _cleanup_free_ char *json = state_json (c->st, STATUS_CREATED, false);
      if (hooks_run (c->spec, HOOK_START_CONTAINER, json, &err) < 0)
        goto fail;
    }
  if (process_finalize (c->spec->process, &c->seccomp, &err) < 0)
    goto fail;
  process_exec (c->spec->process, exe, c->o->preserve_fds, &err);
fail:
  dprintf (2, "capsule: container %s: %s\n", c->o->id, err ? err->msg : "failed");
  _exit (127);
}

/* ---------------------------------------------------------------- the runtime side */

static pid_t
clone_container (struct creation *c, capsule_error **err)
{
  struct clone_args args = { .exit_signal = SIGCHLD };
  pid_t pid;
  if (c->fast)
    args.flags = namespaces_new_flags (c->spec);
  if (c->self_join && (args.flags & CLONE_NEWCGROUP))
    {
      args.flags &= ~CLONE_NEWCGROUP;
      c->cgroupns_late = true;
    }
  if (c->cg && c->cg->ops->version == 2 && c->cg->dirfd >= 0)
    {
      args.flags |= CLONE_INTO_CGROUP;
      args.cgroup = c->cg->dirfd;
    }
  pid = syscall (SYS_clone3, &args, sizeof args);
  if (pid < 0 && errno == EINVAL && (args.flags & CLONE_INTO_CGROUP))
    {
      /* older kernels: join the cgroup by pid after the clone instead */
      args.flags &= ~CLONE_INTO_CGROUP;
      args.cgroup = 0;
      pid = syscall (SYS_clone3, &args, sizeof args);
    }
  if (pid < 0)
    return capsule_error_make (err, errno, "clone the container process");
  if (pid == 0)
    child_main (c);
  return pid;
}

static int
write_oom_score_adj (pid_t pid, const struct spec_process *p, capsule_error **err)
{
  _cleanup_free_ char *path = NULL, *value = NULL;
  if (!p->has_oom_score_adj)
    return 0;
  path = xasprintf ("/proc/%d/oom_score_adj", pid);
  value = xasprintf ("%d", p->oom_score_adj);
  if (write_knob (AT_FDCWD, path, value, err) < 0)
    return capsule_error_wrap (err, "process.oomScoreAdj (lowering it needs CAP_SYS_RESOURCE)");
  return 0;
}

static bool
cgroup_needs_enter (const struct creation *c)
{
  if (c->cg == NULL || c->self_join)
    return false;
  if (c->cg->ops->version == 1)
    return true;
  /* v2: clone3 put the child there unless the kernel refused CLONE_INTO_CGROUP */
  {
    _cleanup_free_ char *path = xasprintf ("/proc/%d/cgroup", c->child);
    _cleanup_free_ char *text = NULL, *own = NULL;
    if (read_file_at (AT_FDCWD, path, 4096, &text, NULL, NULL) < 0)
      return true;
    if (cgroup_own_path (text, NULL, &own) < 0)
      return true;
    return strcmp (own, c->cg->path) != 0;
  }
}

static int
parent_hooks (struct creation *c, capsule_error **err)
{
  _cleanup_free_ char *json = NULL;
  c->st->pid = c->pid;
  json = state_json (c->st, STATUS_CREATING, false);
  if (hooks_run (c->spec, HOOK_PRESTART, json, err) < 0
      || hooks_run (c->spec, HOOK_CREATE_RUNTIME, json, err) < 0)
    return -1;
  return sync_send (c->sync[0], SYNC_HOOKS_DONE, c->pid, err);
}

static int
check_interrupted (capsule_error **err)
{
  sigset_t pending;
  sigpending (&pending);
  for (int s = 1; s < 32; s++)
    if ((s == SIGINT || s == SIGTERM || s == SIGHUP || s == SIGQUIT) && sigismember (&pending, s))
      return capsule_error_make (err, EINTR, "interrupted by signal %s", sigabbrev_np (s));
  return 0;
}

static int
parent_talk (struct creation *c, capsule_error **err)
{
  const struct spec *s = c->spec;
  int flags = namespaces_new_flags (s);
  struct sync_msg m;

  if (!c->fast && (flags & CLONE_NEWUSER) && sync_recv (c->sync[0], SYNC_USERNS, &m, err) < 0)
    return -1;
  if ((flags & CLONE_NEWUSER) && namespaces_write_idmaps (c->child, s, err) < 0)
    return -1;
  if (mounts_idmap_trees (s, c->bind_trees, c->child, err) < 0)
    return -1;
  if (write_oom_score_adj (c->child, s->process, err) < 0)
    return -1;
  if (cgroup_needs_enter (c) && c->cg->ops->enter (c->cg, c->child, err) < 0)
    return -1;
  if (sync_send (c->sync[0], SYNC_GO, 0, err) < 0)
    return -1;
  for (;;)
    {
      if (check_interrupted (err) < 0 || sync_recv (c->sync[0], 0, &m, err) < 0)
        return -1;
      if (m.type == SYNC_PID)
        {
          c->pid = m.value;
          waitpid (c->child, NULL, 0);
          c->child = 0;
        }
      else if (m.type == SYNC_HOOKS)
        {
          if (parent_hooks (c, err) < 0)
            return -1;
        }
      else if (m.type == SYNC_READY)
        return check_interrupted (err);
      else
        return capsule_error_make (err, 0, "sync: unexpected message %d", m.type);
    }
}

int
container_write_pid_file (const char *path, pid_t pid, capsule_error **err)
{
  _cleanup_free_ char *text = xasprintf ("%d", pid);
  if (path == NULL)
    return 0;
  if (write_file_atomic (path, text, strlen (text), 0644, err) < 0)
    return capsule_error_wrap (err, "--pid-file");
  return 0;
}

static int
parent_record (struct creation *c, capsule_error **err)
{
  struct sync_msg m;
  if (proc_start_time (c->pid, &c->st->start_time) < 0)
    return capsule_error_make (err, ESRCH, "the container process vanished");
  c->st->pid = c->pid;
  c->st->creating = false;
  if (state_save (c->o->root, c->st, err) < 0
      || container_write_pid_file (c->o->pid_file, c->pid, err) < 0)
    return -1;
  if (sync_send (c->sync[0], SYNC_DONE, 0, err) < 0
      || sync_recv (c->sync[0], SYNC_ACK, &m, err) < 0)
    return -1;
  return 0;
}

static void
rollback (struct creation *c)
{
  _cleanup_error_ capsule_error *tmp = NULL;
  if (c->pid > 0)
    kill (c->pid, SIGKILL);
  if (c->child > 0)
    {
      kill (c->child, SIGKILL);
      waitpid (c->child, NULL, 0);
    }
  if (c->cg && cgroup_teardown (c->cg, &tmp) < 0)
    capsule_error_release (&tmp);
  if (c->dir_made && rm_rf (c->dir, &tmp) < 0)
    capsule_error_release (&tmp);
  if (c->o->pid_file)
    unlink (c->o->pid_file);
}

struct container_state *
container_record_new (const char *root, const char *id, const struct spec *s,
                      struct cgroup **ret_cg, capsule_error **err)
{
  struct container_state *st = xmalloc0 (sizeof *st);
  st->id = xstrdup (id);
  st->bundle = xstrdup (s->bundle);
  st->rootfs = xstrdup (s->root_path);
  st->created = rfc3339_now ();
  st->creating = true;
  st->n_annotations = s->n_annotations;
  st->annotation_keys = xmalloc0 ((s->n_annotations + 1) * sizeof (char *));
  st->annotation_values = xmalloc0 ((s->n_annotations + 1) * sizeof (char *));
  for (size_t i = 0; i < s->n_annotations; i++)
    {
      st->annotation_keys[i] = xstrdup (s->annotation_keys[i]);
      st->annotation_values[i] = xstrdup (s->annotation_values[i]);
    }
  if (s->resources && s->resources->has_memory_limit && s->resources->memory_limit > 0)
    st->memory_limit = s->resources->memory_limit;
  if (cgroup_new (s->cgroups_path, id, ret_cg, err) < 0)
    return state_free (st);
  st->cgroup_version = (*ret_cg)->ops->version;
  st->cgroup_root = xstrdup ((*ret_cg)->root);
  st->cgroup_path = xstrdup ((*ret_cg)->path);
  for (size_t i = 0; i < ARRAY_SIZE (st->v1_paths); i++)
    st->v1_paths[i] = (*ret_cg)->v1_paths[i] ? xstrdup ((*ret_cg)->v1_paths[i]) : NULL;
  /* Recorded before the cgroup exists, so `delete` finds it even if we die right after. */
  if (state_save (root, st, err) < 0)
    return state_free (st);
  return st;
}

static int
prepare_record (struct creation *c, capsule_error **err)
{
  c->st = container_record_new (c->o->root, c->o->id, c->spec, &c->cg, err);
  return c->st ? 0 : -1;
}

char *
container_make_dir (const char *root, const char *id, capsule_error **err)
{
  char *dir;
  if (mkdir_p (root, 0700, err) < 0)
    {
      capsule_error_wrap (err, "--root");
      return NULL;
    }
  dir = state_dir (root, id);
  if (mkdir (dir, 0700) == 0)
    return dir;
  if (errno == EEXIST)
    capsule_error_make (err, EEXIST, "container `%s` already exists", id);
  else
    capsule_error_make (err, errno, "create `%s`", dir);
  free (dir);
  return NULL;
}

static int
make_state_dir (struct creation *c, capsule_error **err)
{
  c->dir = container_make_dir (c->o->root, c->o->id, err);
  if (c->dir == NULL)
    return -1;
  c->dir_made = true;
  return 0;
}

static int
make_fifo (struct creation *c, capsule_error **err)
{
  _cleanup_free_ char *fifo = xasprintf ("%s/exec.fifo", c->dir);
  if (mkfifo (fifo, 0600) < 0)
    return capsule_error_make (err, errno, "mkfifo `%s`", fifo);
  /* O_RDWR: the container reads from an fd that always has a writer, so it blocks until start
     writes instead of seeing end-of-file. */
  c->fifo_fd = open (fifo, O_RDWR | O_CLOEXEC);
  if (c->fifo_fd < 0)
    return capsule_error_make (err, errno, "open `%s`", fifo);
  return 0;
}

/* A namespace joined by path that is the runtime's own (the host's) is no namespace of the
   container's for a sysctl. */
static int
check_sysctl_hostns (const struct spec *s, capsule_error **err)
{
  static const struct
  {
    int type;
    const char *prefix, *self, *name;
  } kinds[] = {
    { CLONE_NEWNET, "net.", "/proc/self/ns/net", "network" },
    { CLONE_NEWIPC, "kernel.", "/proc/self/ns/ipc", "ipc" },
    { CLONE_NEWIPC, "fs.mqueue.", "/proc/self/ns/ipc", "ipc" },
    { CLONE_NEWUTS, "kernel.domainname", "/proc/self/ns/uts", "uts" },
  };
  for (size_t i = 0; i < s->n_sysctl; i++)
    for (size_t k = 0; k < ARRAY_SIZE (kinds); k++)
      {
        const struct spec_namespace *ns = spec_namespace (s, kinds[k].type);
        struct stat a, b;
        if (strncmp (s->sysctl_keys[i], kinds[k].prefix, strlen (kinds[k].prefix)) != 0
            || ns == NULL || ns->path == NULL)
          continue;
        if (stat (ns->path, &a) == 0 && stat (kinds[k].self, &b) == 0 && a.st_dev == b.st_dev
            && a.st_ino == b.st_ino)
          return capsule_error_make (err, 0,
                                     "config.json: linux.sysctl.%s: the %s namespace `%s` is the "
                                     "host's own",
                                     s->sysctl_keys[i], kinds[k].name, ns->path);
      }
  return 0;
}

static int
check_spec (const struct spec *s, const struct container_opts *o, bool own_tty, capsule_error **err)
{
  struct stat st;
  if (stat (s->root_path, &st) < 0)
    return capsule_error_make (err, errno, "config.json: root.path: `%s`", s->root_path);
  if (!S_ISDIR (st.st_mode))
    return capsule_error_make (err, ENOTDIR, "config.json: root.path: `%s`", s->root_path);
  if (spec_namespace (s, CLONE_NEWNS) == NULL || spec_namespace (s, CLONE_NEWNS)->path)
    return capsule_error_make (err, 0,
                               "config.json: linux.namespaces: capsule needs a new mount namespace "
                               "(add {\"type\": \"mount\"})");
  if (s->process->terminal && o->console_socket == NULL && !own_tty)
    return capsule_error_make (err, 0,
                               "config.json: process.terminal is true but no --console-socket was "
                               "given to receive the terminal");
  return check_sysctl_hostns (s, err);
}

static int
open_console (struct creation *c, bool own_tty, capsule_error **err)
{
  int sv[2];
  if (c->o->console_socket)
    {
      c->console_fd = terminal_connect (c->o->console_socket, err);
      return c->console_fd < 0 ? -1 : 0;
    }
  if (!own_tty)
    return 0;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return capsule_error_make (err, errno, "socketpair");
  c->console_recv = sv[0];
  c->console_fd = sv[1];
  return 0;
}

static bool
id_mapped (const struct spec_idmap *maps, size_t n, uint32_t id)
{
  for (size_t i = 0; i < n; i++)
    if (id >= maps[i].host_id && id - maps[i].host_id < maps[i].size)
      return true;
  return false;
}

/* CVE-2019-5736: until it executes the container's program, the container's process runs this
 * binary, and a process in the container (that program, had it re-executed /proc/self/exe) could
 * open the file through /proc/PID/exe and rewrite the host's runtime.  Without a user namespace
 * of its own, the container's root can: create runs from a sealed copy then.  In a new user
 * namespace that maps neither the file's owner nor, if it is group-writable, its group, with no
 * write bit for others and no ACL, no process in the container may open it for writing (its
 * capabilities do not reach a file whose owner it does not map), and the copy, 1-3 ms of a
 * start, is not made.  The shim's sandboxes are such containers. */
static bool
binary_writable (const struct spec *s)
{
  const struct spec_namespace *user = spec_namespace (s, CLONE_NEWUSER);
  struct stat st;
  if (user == NULL || user->path != NULL || stat ("/proc/self/exe", &st) < 0)
    return true;
  if ((st.st_mode & S_IWOTH) || id_mapped (s->uid_mappings, s->n_uid_mappings, st.st_uid)
      || ((st.st_mode & S_IWGRP) && id_mapped (s->gid_mappings, s->n_gid_mappings, st.st_gid)))
    return true;
  /* an ACL could name a mapped user */
  if (getxattr ("/proc/self/exe", "system.posix_acl_access", NULL, 0) >= 0)
    return true;
  return errno != ENODATA && errno != ENOTSUP;
}

/* The caller blocks the signals that should interrupt create, so they stay pending and are
   noticed between steps; the container process resets its own signals. */
static int
do_create (const struct container_opts *o, struct creation *c, bool own_tty, capsule_error **err)
{
  *c = (struct creation){ .o = o,
                          .sync = { -1, -1 },
                          .fifo_fd = -1,
                          .console_fd = -1,
                          .console_recv = -1,
                          .tasks_fds = { -1, -1, -1, -1, -1, -1, -1, -1 },
                          .parent = getpid () };
  if (!container_id_valid (o->id))
    return capsule_error_make (err, EINVAL,
                               "invalid container id \"%s\" (use letters, digits, "
                               "\"_\", \"+\", \"-\", \".\")",
                               o->id);
  c->spec = spec_load (o->bundle ? o->bundle : ".", err);
  if (c->spec == NULL || check_spec (c->spec, o, own_tty, err) < 0)
    return -1;
  /* before anything is made: the copy starts over from the top */
  if (o->reexec_argv && binary_writable (c->spec) && capsule_exec_sealed_copy (o->reexec_argv) < 0)
    return capsule_error_make (err, errno, "cannot run from a sealed copy of /proc/self/exe");
  if (c->spec->process->terminal && open_console (c, own_tty, err) < 0)
    return -1;
  if (c->spec->seccomp)
    {
      _cleanup_free_ char *cache = xasprintf ("%s/.seccomp-cache", o->root);
      if (seccomp_compile_cached (c->spec->seccomp, cache, &c->seccomp, err) < 0)
        return -1;
    }
  c->fast = !namespaces_any_path (c->spec);
  if (spec_namespace (c->spec, CLONE_NEWUSER))
    mounts_precreate_targets (c->spec);
  c->bind_trees = mounts_open_bind_trees (c->spec, spec_namespace (c->spec, CLONE_NEWUSER));
  if (make_state_dir (c, err) < 0 || prepare_record (c, err) < 0
      || c->cg->ops->create (c->cg, err) < 0
      || c->cg->ops->apply (c->cg, c->spec->resources, err) < 0 || make_fifo (c, err) < 0)
    goto fail;
  if (c->cg->ops->version == 1)
    {
      if (cgroup_v1_open_tasks (c->cg, c->tasks_fds, err) < 0)
        goto fail;
      c->self_join = true;
    }
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c->sync) < 0)
    {
      capsule_error_make (err, errno, "socketpair");
      goto fail;
    }
  c->child = clone_container (c, err);
  if (c->child < 0)
    {
      c->child = 0;
      goto fail;
    }
  c->pid = c->child;
  close (c->sync[1]);
  c->sync[1] = -1;
  cgroup_v1_close_tasks (c->tasks_fds);
  if (c->console_fd >= 0)
    close (c->console_fd); /* the container's now */
  c->console_fd = -1;
  if (parent_talk (c, err) < 0 || parent_record (c, err) < 0)
    goto fail;
  return 0;
fail:
  rollback (c);
  return -1;
}

int
container_create (const struct container_opts *o, capsule_error **err)
{
  struct creation c;
  sigset_t mask, old;
  int r;
  sigemptyset (&mask);
  sigaddset (&mask, SIGINT);
  sigaddset (&mask, SIGTERM);
  sigaddset (&mask, SIGHUP);
  sigaddset (&mask, SIGQUIT);
  sigprocmask (SIG_BLOCK, &mask, &old);
  r = do_create (o, &c, false, err);
  creation_release (&c);
  /* A signal that interrupted create stays blocked: the caller reports the error and exits.
     Any other failure leaves the caller's mask as it was (a daemon keeps running). */
  if (r == 0 || (*err)->status != EINTR)
    sigprocmask (SIG_SETMASK, &old, NULL);
  return r;
}

/* ---------------------------------------------------------------- start, run */

static int
load_checked (const char *root, const char *id, struct container_state **ret, capsule_error **err)
{
  if (!container_id_valid (id))
    return capsule_error_make (err, EINVAL, "invalid container id \"%s\"", id);
  return state_load (root, id, ret, err);
}

/* The hooks come from KNOWN, the spec the container was made from, when the caller holds it
   (run); otherwise from the bundle. */
static void
run_poststart (const struct container_state *st, const struct spec *known)
{
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_spec_ struct spec *loaded = known ? NULL : spec_load (st->bundle, &err);
  const struct spec *s = known ? known : loaded;
  _cleanup_free_ char *json = NULL;
  if (s == NULL || s->n_hooks[HOOK_POSTSTART] == 0)
    return;
  json = state_json (st, STATUS_RUNNING, false);
  if (hooks_run (s, HOOK_POSTSTART, json, &err) < 0)
    dprintf (2, "capsule: warning: %s\n", err->msg);
}

static int
start_fifo (const char *root, const struct container_state *st, capsule_error **err)
{
  _cleanup_free_ char *fifo = xasprintf ("%s/%s/exec.fifo", root, st->id);
  _cleanup_close_ int fd = open (fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return capsule_error_make (err, errno == ENXIO ? ESRCH : errno,
                               "start container `%s`: its process is gone", st->id);
  if (write (fd, "0", 1) != 1)
    return capsule_error_make (err, errno, "start container `%s`", st->id);
  /* The container holds exec.fifo open until its execve (or death) closes it: once nobody reads
     it, the process has started, so poststart hooks run after the exec as the spec wants.  The
     write end says so itself: POLLERR once the last reader is gone (no polling on a timer). */
  for (;;)
    {
      struct pollfd p = { fd, 0, 0 };
      int r = poll (&p, 1, -1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return capsule_error_make (err, errno, "start container `%s`: wait for its exec", st->id);
      if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
        break;
    }
  unlink (fifo);
  return 0;
}

/* Load container ID's record and lock it, so its status holds while the caller acts on it.
   *RET_LOCK is the lock's fd (the caller closes it). */
int
container_load_locked (const char *root, const char *id, struct container_state **ret,
                       int *ret_lock, enum container_status *ret_status, capsule_error **err)
{
  if (load_checked (root, id, ret, err) < 0)
    return -1;
  *ret_lock = state_lock (root, id, err);
  if (*ret_lock < 0)
    return -1;
  *ret_status = state_status (root, *ret);
  return 0;
}

int
container_start (const char *root, const char *id, capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_close_ int lock = -1;
  enum container_status status;
  if (container_load_locked (root, id, &st, &lock, &status, err) < 0)
    return -1;
  if (status != STATUS_CREATED)
    return capsule_error_make (err, 0, "cannot start container `%s`: it is %s, not created", id,
                               container_status_name (status));
  if (start_fifo (root, st, err) < 0)
    return -1;
  run_poststart (st, NULL);
  return 0;
}

static void
report_oom (const struct container_state *st)
{
  _cleanup_cgroup_ struct cgroup *cg = state_cgroup (st);
  uint64_t kills = 0;
  if (cg == NULL || cg->ops->oom_kills (cg, &kills) < 0 || kills == 0)
    return;
  if (st->memory_limit)
    dprintf (2, "capsule: container %s: killed: out of memory (limit %.1f MiB)\n", st->id,
             st->memory_limit / 1048576.0);
  else
    dprintf (2, "capsule: container %s: killed: out of memory\n", st->id);
}

void
container_exited (const char *root, const struct container_state *st, const struct spec *known,
                  bool keep)
{
  _cleanup_error_ capsule_error *err = NULL;
  report_oom (st);
  if (!keep && container_delete_known (root, st->id, true, known, &err) < 0)
    dprintf (2, "capsule: warning: %s\n", err->msg);
}

void
container_forwarding_mask (sigset_t *mask)
{
  static const int sigs[]
      = { SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
  sigemptyset (mask);
  for (size_t i = 0; i < ARRAY_SIZE (sigs); i++)
    sigaddset (mask, sigs[i]);
}

int
container_run (const struct container_opts *o, bool detach, bool keep, int *ret_status,
               capsule_error **err)
{
  struct creation c;
  sigset_t mask, old;
  _cleanup_close_ int master = -1;
  int r;
  container_forwarding_mask (&mask);
  sigprocmask (SIG_BLOCK, &mask, &old);
  prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  r = do_create (o, &c, !detach, err);
  if (r == 0)
    {
      close (c.fifo_fd);
      c.fifo_fd = -1;
    }
  if (r == 0 && c.console_recv >= 0 && (master = terminal_recv_master (c.console_recv, err)) < 0)
    {
      rollback (&c);
      r = -1;
    }
  if (r == 0 && start_fifo (o->root, c.st, err) < 0)
    {
      rollback (&c);
      r = -1;
    }
  if (r == 0)
    {
      run_poststart (c.st, c.spec);
      *ret_status = 0;
      if (!detach)
        {
          if (master >= 0)
            terminal_proxy (master, c.pid, &mask, ret_status);
          else
            process_wait_forwarding (c.pid, &mask, ret_status);
          container_exited (o->root, c.st, c.spec, keep);
        }
    }
  creation_release (&c);
  sigprocmask (SIG_SETMASK, &old, NULL);
  return r;
}

/* ---------------------------------------------------------------- kill, delete, pause, state */

static int
signal_process (const struct container_state *st, int sig, capsule_error **err)
{
  _cleanup_close_ int pidfd = syscall (SYS_pidfd_open, st->pid, 0);
  if (pidfd < 0 || !state_process_alive (st))
    return capsule_error_make (err, ESRCH, "container `%s` is not running", st->id);
  if (syscall (SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
    return capsule_error_make (err, errno, "signal container `%s`", st->id);
  return 0;
}

int
container_kill (const char *root, const char *id, int sig, bool all, capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  enum container_status status;
  if (load_checked (root, id, &st, err) < 0)
    return -1;
  status = state_status (root, st);
  if (status == STATUS_STOPPED && !all)
    return capsule_error_make (err, ESRCH, "container `%s` is not running", id);
  cg = state_cgroup (st);
  if (all && cg)
    {
      _cleanup_free_ pid_t *pids = NULL;
      size_t n = 0;
      if (cg->ops->procs (cg, &pids, &n, err) < 0)
        return -1;
      for (size_t i = 0; i < n; i++)
        kill (pids[i], sig);
      return 0;
    }
  return signal_process (st, sig, err);
}

static void
wait_gone (const struct container_state *st)
{
  _cleanup_close_ int pidfd = syscall (SYS_pidfd_open, st->pid, 0);
  struct pollfd p = { .fd = pidfd, .events = POLLIN };
  if (pidfd < 0 || !state_process_alive (st))
    return;
  poll (&p, 1, 10000);
  /* our own child (run): reap it so it leaves no zombie */
  waitpid (st->pid, NULL, WNOHANG);
}

static void
run_poststop (const struct container_state *st, const struct spec *known)
{
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_spec_ struct spec *loaded = NULL;
  const struct spec *s = known;
  _cleanup_free_ char *json = NULL;
  if (s == NULL && (st->bundle == NULL || (s = loaded = spec_load (st->bundle, &err)) == NULL))
    return;
  if (s->n_hooks[HOOK_POSTSTOP] == 0)
    return;
  json = state_json (st, STATUS_STOPPED, false);
  if (hooks_run (s, HOOK_POSTSTOP, json, &err) < 0)
    dprintf (2, "capsule: warning: %s\n", err->msg);
}

static int
delete_leftover_dir (const char *root, const char *id, capsule_error **err)
{
  _cleanup_free_ char *dir = state_dir (root, id);
  struct stat sb;
  if (stat (dir, &sb) < 0)
    return capsule_error_make (err, ENOENT, "container `%s` does not exist", id);
  return rm_rf (dir, err);
}

int
container_delete (const char *root, const char *id, bool force, capsule_error **err)
{
  return container_delete_known (root, id, force, NULL, err);
}

int
container_delete_known (const char *root, const char *id, bool force, const struct spec *known,
                        capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  _cleanup_free_ char *dir = NULL;
  _cleanup_close_ int lock = -1;
  enum container_status status;

  if (!container_id_valid (id))
    return capsule_error_make (err, EINVAL, "invalid container id \"%s\"", id);
  if (state_load (root, id, &st, err) < 0)
    {
      if ((*err)->status != ENOENT)
        return -1;
      capsule_error_release (err);
      if (delete_leftover_dir (root, id, err) < 0)
        {
          /* Like runc: --force of a container that is not there (a create that failed, one
             deleted already) succeeds quietly, so an engine can always clean up. */
          if (!force || (*err)->status != ENOENT)
            return -1;
          capsule_error_release (err);
        }
      return 0;
    }
  lock = state_lock (root, id, err);
  if (lock < 0)
    return -1;
  status = state_status (root, st);
  if ((status == STATUS_RUNNING || status == STATUS_PAUSED) && !force)
    return capsule_error_make (err, EBUSY,
                               "container `%s` is %s: stop it first or use delete --force", id,
                               container_status_name (status));
  cg = state_cgroup (st);
  if (status != STATUS_STOPPED && cg == NULL)
    kill (st->pid, SIGKILL);
  if (cg && cgroup_teardown (cg, err) < 0)
    return -1;
  wait_gone (st);
  run_poststop (st, known);
  dir = state_dir (root, id);
  return rm_rf (dir, err);
}

int
container_pause (const char *root, const char *id, bool pause, capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  _cleanup_close_ int lock = -1;
  enum container_status status;
  if (container_load_locked (root, id, &st, &lock, &status, err) < 0)
    return -1;
  if (pause && status != STATUS_RUNNING && status != STATUS_CREATED)
    return capsule_error_make (err, 0, "cannot pause container `%s`: it is %s", id,
                               container_status_name (status));
  if (!pause && status != STATUS_PAUSED)
    return capsule_error_make (err, 0, "cannot resume container `%s`: it is %s, not paused", id,
                               container_status_name (status));
  cg = state_cgroup (st);
  if (cg == NULL)
    return capsule_error_make (err, 0, "container `%s` has no cgroup to freeze", id);
  return cg->ops->freeze (cg, pause, err);
}

int
container_state (const char *root, const char *id, char **ret_json, capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  _cleanup_error_ capsule_error *tmp = NULL;
  struct cgroup_stats stats = { 0 };
  if (load_checked (root, id, &st, err) < 0)
    return -1;
  cg = state_cgroup (st);
  if (cg && cg->ops->stats (cg, &stats, &tmp) < 0)
    stats.oom_kills = 0;
  *ret_json = state_json (st, state_status (root, st), stats.oom_kills > 0);
  return 0;
}

/* The cgroup of container ID, or an error saying it has none. */
static struct cgroup *
container_cgroup (const char *root, const char *id, capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  struct cgroup *cg;
  if (load_checked (root, id, &st, err) < 0)
    return NULL;
  cg = state_cgroup (st);
  if (cg == NULL)
    capsule_error_make (err, 0, "container `%s` has no cgroup", id);
  return cg;
}

int
container_stats (const char *root, const char *id, struct cgroup_stats *ret, capsule_error **err)
{
  _cleanup_cgroup_ struct cgroup *cg = container_cgroup (root, id, err);
  return cg ? cg->ops->stats (cg, ret, err) : -1;
}

int
container_pids (const char *root, const char *id, pid_t **ret, size_t *ret_n, capsule_error **err)
{
  _cleanup_cgroup_ struct cgroup *cg = container_cgroup (root, id, err);
  return cg ? cg->ops->procs (cg, ret, ret_n, err) : -1;
}

int
container_update (const char *root, const char *id, const struct spec_resources *r,
                  capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  _cleanup_close_ int lock = -1;
  enum container_status status;
  if (container_load_locked (root, id, &st, &lock, &status, err) < 0)
    return -1;
  if (status == STATUS_STOPPED)
    return capsule_error_make (err, 0, "cannot update container `%s`: it is stopped", id);
  cg = state_cgroup (st);
  if (cg == NULL)
    return capsule_error_make (err, 0, "container `%s` has no cgroup", id);
  if (cg->ops->apply (cg, r, err) < 0)
    return capsule_error_wrap (err, "update container `%s`", id);
  if (r->has_memory_limit)
    {
      st->memory_limit = r->memory_limit > 0 ? r->memory_limit : 0;
      return state_save (root, st, err);
    }
  return 0;
}
