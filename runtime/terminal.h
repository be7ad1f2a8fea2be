/* capsule: process.terminal.  The container's process gets a pty from the container's own devpts
 * as its fds 0-2 and controlling terminal; the master goes to whoever asked (--console-socket,
 * SCM_RIGHTS, as runc does) or, for `run` and `exec` in the foreground, stays with the runtime,
 * which copies between it and its own stdio. */
#pragma once

#include <signal.h>
#include <sys/types.h>

#include "error.h"

/* Connect to the engine's console socket (a unix stream socket path). */
int terminal_connect (const char *path, capsule_error **err);
/* In the container process: make a pty, make its slave fds 0-2 and the controlling terminal,
 * send the master over SOCK, close it. */
int terminal_setup_child (int sock, capsule_error **err);
/* Receive the master sent by terminal_setup_child. */
int terminal_recv_master (int sock, capsule_error **err);
/* Copy stdin → MASTER and MASTER → stdout until PID exits (waited for, signals of MASK forwarded,
 * window size followed); our stdin is put in raw mode while it is a terminal. */
void terminal_proxy (int master, pid_t pid, const sigset_t *mask, int *ret_status);
