/*
 * notify: the service manager's readiness protocol (sd_notify(3)), spoken directly so Herald
 * needs no libsystemd. A state such as "READY=1" is one datagram to the AF_UNIX socket named
 * in $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@'). Without
 * $NOTIFY_SOCKET every call does nothing and succeeds, so `herald run` behaves the same
 * outside systemd.
 */
#ifndef HERALD_NOTIFY_H
#define HERALD_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=...") to $NOTIFY_SOCKET. 0 when sent or when there is no
   socket to send to; -1 with *err (caller frees) otherwise. */
int notify_send(const char *state, char **err);

/*
 * The three moments `herald run` reports. Each logs a warning on failure (once) and never
 * fails the caller: a lost notification is the manager's to time out on, not a reason to stop
 * sending. notify_watchdog may be called as often as the caller likes: it sends WATCHDOG=1
 * only when $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set, is this process), at most once
 * per half that interval.
 */
void notify_ready(void);
void notify_watchdog(void);
void notify_stopping(void);

#endif
