/*
 * mbus.h: the Mbus API of the UCL common library (version 1.2.19), as RAT,
 * VIC and SDR use it, implemented by rmbus (RFC 3259).
 *
 * Written for rmbus; the names, types and constants are UCL's so that a
 * program written against UCL's header compiles against this one and links
 * with -lrmbus_c (pkg-config: rmbus-c) without edits.
 *
 * Where rmbus behaves differently from UCL:
 *  - Reliable messages are pipelined: mbus_send() sends every queued message
 *    at once instead of stopping at the first reliable one until it is
 *    acknowledged (stop-and-wait). Retransmissions follow RFC 3259 section 7
 *    (100, 300 ms; lost at 600 ms) instead of UCL's 250/500/750 ms and 5 s.
 *  - A reliable message to an address no known entity matches, or that
 *    matches several, is not sent at all: err_handler gets
 *    MBUS_DESTINATION_UNKNOWN or MBUS_DESTINATION_NOT_UNIQUE from
 *    mbus_send(). A unique subset address is completed to the entity's
 *    address.
 *  - Datagrams are checked against a replay window (REPLAY_WINDOW in the
 *    configuration, 30 s by default) and duplicates are remembered per
 *    message, not only the last one per source.
 *  - Hellos follow RFC 3259 section 9.1's schedule whatever interval
 *    mbus_heartbeat() is given; the entity table forgets an entity after
 *    5.5 of its hello intervals.
 *  - The command handler gets mbus.hello when an entity is first heard (and
 *    again after it left), not for every hello; mbus.bye, mbus.quit,
 *    mbus.waiting and mbus.go as they come. Commands that are Mbus
 *    Guidelines RPCs (requests, returns, transactions) are answered by
 *    rmbus's Guidelines layer (an RPC request nobody serves gets UNKNOWN)
 *    and do not reach the handler.
 *  - Arguments reach the handler re-encoded in rmbus's canonical form
 *    (strings escape only \\, \" and \n), which mbus_decode_str() reads.
 *  - An entity does not hear its own messages: UCL's handler also gets the
 *    commands it sent to a group address (such as "()"), and UCL counts
 *    itself in mbus_addr_valid() and in the uniqueness of a destination;
 *    rmbus does neither.
 *  - Where UCL asserts or aborts (an invalid own address, a NULL handler,
 *    an Integer beyond 32 bits, an unquoted string to mbus_decode_str()),
 *    rmbus returns an error value and logs a line on stderr.
 *
 * Every string argument is a NUL-terminated string (a precondition that no
 * library can check); commands, arguments and addresses must be UTF-8.
 * Functions that return void report a failure through mbus_last_error()
 * and a line on stderr ("rmbus: ..."; RMBUS_C_QUIET=1 silences it). A
 * handle is checked on every call: a handle used after mbus_exit() (or
 * never returned by mbus_init()) gets the error value and a log line,
 * never a crash. Use a handle from one thread at a time, as with UCL (its
 * state is locked, so calls from two threads do not corrupt it, but the
 * handlers could then run on both at once). The command and error
 * handlers run on the thread that called mbus_recv(), mbus_send(),
 * mbus_retransmit(), mbus_heartbeat(), mbus_exit() or a rendezvous
 * function, with no lock held, and may call any function of this header
 * (mbus_exit() included). A program that also links UCL's own library
 * (for its RTP or memory functions) must put -lrmbus_c before it, or the
 * linker may take UCL's Mbus functions instead.
 */

#ifndef _MBUS_H
#define _MBUS_H

#include <sys/time.h>

/* Error codes, as passed to err_handler. */
#define MBUS_MESSAGE_LOST           1
#define MBUS_DESTINATION_UNKNOWN    2
#define MBUS_DESTINATION_NOT_UNIQUE 3
#define MBUS_ERR_MAX                4

struct mbus;

#if defined(__cplusplus)
extern "C" {
#endif

/* The names of the codes above, indexed by code: "MBUS_OK",
 * "MBUS_MESSAGE_LOST", "MBUS_DESTINATION_UNKNOWN",
 * "MBUS_DESTINATION_NOT_UNIQUE", "MBUS_UNKOWN_ERR" (UCL's spelling).
 * Read-only memory: writing into it is a crash. */
extern char mbus_errlist[][30];

/* Joins the bus as addr, e.g. "(media:audio module:engine app:rat)" (an id
 * element <pid>-<n>@<ip> is added if addr has none). The configuration is
 * $MBUS, else ~/.mbus, read as UCL's files are, and created with fresh keys
 * when missing. cmd_handler(src, cmd, args, data) gets each command
 * addressed to us (src with parentheses, args without), data being what
 * mbus_recv() was given; err_handler(seqnum, reason) gets the failures of
 * reliable messages (seqnum as counted by mbus_qmsg(), from 1). Returns
 * NULL if the address, the configuration or the sockets fail (the reason
 * on stderr). */
struct mbus *mbus_init(void  (*cmd_handler)(char *src, char *cmd, char *arg, void *dat),
                       void  (*err_handler)(int seqnum, int reason),
                       char  *addr);
/* Replaces the command handler. */
void         mbus_cmd_handler(struct mbus *m, void  (*cmd_handler)(char *src, char *cmd, char *arg, void *dat));
/* Sends what is queued, lets reliable messages in flight be acknowledged
 * (600 ms at most; commands received meanwhile are dropped), says mbus.bye
 * and leaves; m is invalid afterwards (using it again is an error, not a
 * crash). Refused destinations and reliable messages still unacknowledged
 * reach err_handler before it returns. */
void         mbus_exit(struct mbus *m);
/* 1 if an entity that addr designates is known (addr a subset of its
 * address), else 0. */
int          mbus_addr_valid(struct mbus *m, char *addr);
/* Queues command cmnd with arguments args (the text inside the list, e.g.
 * "\"x\" 12") for dest; consecutive commands for the same destination share
 * one message. Nothing is sent before mbus_send(). */
void         mbus_qmsg(struct mbus *m, const char *dest, const char *cmnd, const char *args, int reliable);
/* mbus_qmsg() with the arguments formatted printf-style (no length limit). */
void         mbus_qmsgf(struct mbus *m, const char *dest, int reliable, const char *cmnd, const char *format, ...);
/* Sends every queued message. */
void         mbus_send(struct mbus *m);
/* Waits up to *timeout (NULL: not at all) for datagrams, reads them and runs
 * the handlers; timers due meanwhile run too. Returns 1 if a datagram was
 * received, else 0. */
int          mbus_recv(struct mbus *m, void *data, struct timeval *timeout);
/* Runs the retransmission timers; a reliable message that fails reaches
 * err_handler(seqnum, MBUS_MESSAGE_LOST). */
void         mbus_retransmit(struct mbus *m);
/* Runs the hello timer (see above: the interval is RFC 3259's). */
void         mbus_heartbeat(struct mbus *m, int interval);
/* 1 while a reliable message awaits its acknowledgement. */
int          mbus_waiting_ack(struct mbus *m);
/* 1 when nothing is queued and no reliable message awaits an acknowledgement. */
int          mbus_sent_all(struct mbus *m);
/* Sends mbus.waiting(token) to addr every 100 ms until an mbus.go(token)
 * comes back; other commands go to the handler meanwhile (with data).
 * Returns the address of the entity that sent mbus.go, to be freed with
 * xfree() (mbus_parser.h), or NULL after rendezvous_timeout_usec (0: wait
 * for ever). */
char        *mbus_rendezvous_waiting(struct mbus *m, char *addr, char *token, void *data, const long rendezvous_timeout_usec);
/* Waits for an mbus.waiting(token), then answers its sender with a reliable
 * mbus.go(token) and waits until that settles. Returns the sender's address
 * (free with xfree()), or NULL after rendezvous_timeout_usec (0: for ever). */
char        *mbus_rendezvous_go(struct mbus *m, char *token, void *data, const long rendezvous_timeout_usec);

/* rmbus's own: why the most recent failed call on m failed, or "" if none
 * has; for a handle that is not live, a sentence that says so. The text is
 * the calling thread's copy, valid until its next mbus_last_error(). */
const char  *mbus_last_error(struct mbus *m);

#if defined(__cplusplus)
}
#endif

#endif /* _MBUS_H */
