/* capsule-shim: the event loop.  It knows fds, timers, signals and child processes, and nothing
 * of sessions: whoever registers something gives the function to call back.
 *
 * One event a turn: level-triggered epoll puts a reported fd back at the tail of its ready list,
 * so a flooding peer takes turns with everyone else, and no handler can free what another event
 * of the same batch points at.  Due timers run after each event.  Every registration is a struct
 * embedded in its owner; an owner that goes away removes its registrations first. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct loop;

struct loop_io
{
  int fd;
  uint32_t events; /* EPOLLIN, EPOLLOUT, ... as registered */
  void (*fn) (struct loop_io *io, uint32_t revents);
  void *data;
};

struct loop_timer
{
  int64_t when_ms; /* monotonic */
  size_t slot;     /* 0 when not armed, else its place in the heap + 1 */
  void (*fn) (struct loop_timer *t);
  void *data;
};

/* A child process to hear about.  Its exit status comes even when the child was reaped before
 * it was registered (the loop keeps the last statuses of children nobody asked about). */
struct loop_child
{
  pid_t pid;
  void (*fn) (struct loop_child *c, int status);
  void *data;
  struct loop_child *next;
};

#define LOOP_REAPED_KEPT 128

struct loop
{
  int epfd, signal_fd;
  struct loop_io signal_io;
  struct loop_timer **heap;
  size_t n_timers, cap_timers;
  struct loop_child *children;
  struct
  {
    pid_t pid;
    int status;
  } reaped[LOOP_REAPED_KEPT];
  size_t reaped_next;
  bool stopping;
  void (*on_stop) (void *data); /* SIGTERM or SIGINT */
  void (*on_hup) (void *data);
  void *signal_data;
};

int loop_init (struct loop *l, capsule_error **err);
void loop_release (struct loop *l);

int loop_io_add (struct loop *l, struct loop_io *io, int fd, uint32_t events);
void loop_io_set (struct loop *l, struct loop_io *io, uint32_t events);
/* Safe on an io never added (fd < 0). */
void loop_io_del (struct loop *l, struct loop_io *io);

void loop_timer_at (struct loop *l, struct loop_timer *t, int64_t when_ms);
void loop_timer_in (struct loop *l, struct loop_timer *t, int64_t ms);
void loop_timer_stop (struct loop *l, struct loop_timer *t);
static inline bool
loop_timer_armed (const struct loop_timer *t)
{
  return t->slot != 0;
}

void loop_child_add (struct loop *l, struct loop_child *c, pid_t pid);
void loop_child_del (struct loop *l, struct loop_child *c);
/* The exit status of PID if the loop reaped it and nobody was told yet. */
bool loop_child_reaped (struct loop *l, pid_t pid, int *ret_status);

/* Run until loop_quit() or a stop signal. */
int loop_run (struct loop *l);
void loop_quit (struct loop *l);

int64_t loop_now_ms (void);
